package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
)

type ping struct {
	N int `json:"n"`
}

// Handle and Request carry typed bodies both ways; an error reply keeps
// its code and retry hint; an undecodable request is answered "invalid"
// and counted once, in the bus.
func TestTypedRequestReply(t *testing.T) {
	b := bustest.Start(t)
	srv, _ := b.Connect("server")
	cli, _ := b.Connect("client")
	if _, err := bus.Handle(srv, "test.ping", func(p ping) (ping, error) {
		switch p.N {
		case 7:
			return ping{}, fmt.Errorf("wrapped: %w", &bus.ReplyError{Code: wire.CodeBusy, Msg: "busy", RetryAfter: 3})
		case 8:
			return ping{}, errors.New("plain failure")
		}
		return ping{N: p.N + 1}, nil
	}); err != nil {
		t.Fatal(err)
	}
	_ = srv.Flush()
	ctx := context.Background()
	if got, err := bus.Request[ping, ping](ctx, cli, "test.ping", ping{N: 1}); err != nil || got.N != 2 {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	var re *bus.ReplyError
	if _, err := bus.Request[ping, ping](ctx, cli, "test.ping", ping{N: 7}); !errors.As(err, &re) || re.Code != wire.CodeBusy || re.RetryAfter != 3 || re.Msg != "wrapped: busy" {
		t.Fatalf("coded error: %#v", err)
	}
	if _, err := bus.Request[ping, ping](ctx, cli, "test.ping", ping{N: 8}); !errors.As(err, &re) || re.Code != wire.CodeInternal {
		t.Fatalf("plain error: %#v", err)
	}
	m, err := cli.Request("test.ping", []byte("{not json"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var e wire.ErrorReply
	if json.Unmarshal(m.Data, &e); e.Code != wire.CodeInvalid || b.Undecodable() != 1 {
		t.Fatalf("undecodable request: %s, counted %d", m.Data, b.Undecodable())
	}
	if _, err := bus.Request[ping, ping](ctx, cli, "test.nobody", ping{}); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("no responder: %v", err)
	}
}

// Subscribe drops and counts what does not decode; the telemetry
// subscription sees one hive only.
func TestTypedSubscriptions(t *testing.T) {
	b := bustest.Start(t)
	c, _ := b.Connect("c")
	got := make(chan ping, 4)
	if _, err := bus.Subscribe(c, "test.sub", func(p ping) { got <- p }); err != nil {
		t.Fatal(err)
	}
	var dropped atomic.Uint64
	ch, _, err := bus.SubscribeChan[ping](c, "test.chan", 1, &dropped)
	if err != nil {
		t.Fatal(err)
	}
	tele := make(chan string, 4)
	if _, err := bus.SubscribeTelemetry(c, "h1", func(d []byte) { tele <- string(d) }); err != nil {
		t.Fatal(err)
	}
	_ = c.Flush()
	pub, _ := b.Connect("pub")
	_ = pub.Publish("test.sub", []byte("nope"))
	_ = pub.PublishJSON("test.sub", ping{N: 5})
	_ = pub.PublishTelemetry("other", []byte("o"))
	_ = pub.PublishTelemetry("h1", []byte("mine"))
	for i := range 3 {
		_ = pub.PublishJSON("test.chan", ping{N: i})
	}
	_ = pub.Flush()
	if p := <-got; p.N != 5 {
		t.Fatalf("got %+v", p)
	}
	if d := <-tele; d != "mine" {
		t.Fatalf("telemetry of another hive delivered: %q", d)
	}
	bustest.WaitFor(t, 5*time.Second, func() error {
		if b.Undecodable() != 1 || dropped.Load() != 2 {
			return fmt.Errorf("undecodable %d, dropped %d", b.Undecodable(), dropped.Load())
		}
		return nil
	})
	if p := <-ch; p.N != 0 {
		t.Fatalf("chan got %+v", p)
	}
}
