// Package bus owns the hive's event bus: an embedded nats-server, the
// in-process connections handed to modules, and every subject and message
// type that modules exchange. Modules import bus and never each other, so
// this package is the whole contract between them.
package bus
