package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive/bus/wire"
)

// NATS follows hive.telemetry on a NATS server: a hive's own listener
// (--nats-listen) or a hub that many hives export to.
type NATS struct {
	// URL of the server, e.g. nats://127.0.0.1:4222.
	URL string
	// HiveID, if set, keeps that hive's events only.
	HiveID string
	// Options are passed to nats.Connect (credentials, TLS, names).
	Options []nats.Option
	// Buffer is how many events may wait for fn; 0 is 256. Past it the
	// connection counts the rest as a slow consumer's and drops them.
	Buffer int
}

// Run delivers every telemetry event to fn until ctx ends. Events carry
// no SSE id on NATS: Event.ID is 0. The connection reconnects on its own
// (nats.go). fn runs on Run's own goroutine, in order, so when Run returns
// no call of fn is running or will run.
func (n *NATS) Run(ctx context.Context, fn func(Event)) error {
	opts := append([]nats.Option{nats.Name("hive client"), nats.MaxReconnects(-1)}, n.Options...)
	nc, err := nats.Connect(n.URL, opts...)
	if err != nil {
		return fmt.Errorf("client: connect %s: %w", n.URL, err)
	}
	defer nc.Close()
	size := n.Buffer
	if size <= 0 {
		size = 256
	}
	// nats.go delivers into a channel without blocking its reader, so a
	// slow fn costs events (counted by nats.go) rather than the
	// connection.
	msgs := make(chan *nats.Msg, size)
	sub, err := nc.ChanSubscribe(wire.SubjectTelemetry, msgs)
	if err != nil {
		return fmt.Errorf("client: subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-msgs:
			if n.HiveID != "" && m.Header.Get(wire.HeaderHiveID) != n.HiveID {
				continue
			}
			var ev Event
			if json.Unmarshal(m.Data, &ev.Telemetry) != nil {
				continue
			}
			fn(ev)
		}
	}
}
