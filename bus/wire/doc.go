// Package wire holds the hive's contracts: every subject, header and
// message body that crosses the bus, the SSE stream or the Queen's HTTP
// API. It imports nothing but the standard library, so a client of the
// hive (package client, a worker, a dashboard) links these types without
// the NATS server the hive embeds.
package wire
