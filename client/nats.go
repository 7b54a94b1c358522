package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive/bus"
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
}

// Run delivers every telemetry event to fn until ctx ends. The connection
// reconnects on its own (nats.go); fn runs on one goroutine, in order.
func (n *NATS) Run(ctx context.Context, fn func(bus.TelemetryEvent)) error {
	opts := append([]nats.Option{nats.Name("hive client"), nats.MaxReconnects(-1)}, n.Options...)
	nc, err := nats.Connect(n.URL, opts...)
	if err != nil {
		return fmt.Errorf("client: connect %s: %w", n.URL, err)
	}
	defer nc.Close()
	sub, err := nc.Subscribe(bus.SubjectTelemetry, func(m *nats.Msg) {
		if n.HiveID != "" && m.Header.Get(bus.HeaderHiveID) != n.HiveID {
			return
		}
		var ev bus.TelemetryEvent
		if json.Unmarshal(m.Data, &ev) != nil {
			return
		}
		fn(ev)
	})
	if err != nil {
		return fmt.Errorf("client: subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	<-ctx.Done()
	return ctx.Err()
}
