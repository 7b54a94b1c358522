package bus

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/rbee/hive/bus/wire"
)

// The bridge's queue never blocks a publisher: with it full, the oldest
// message makes room and is counted, so the edge gets the newest ticks.
// It takes only the exported subjects, and keeps its own copy of the bytes.
func TestBridgeOfferDropsOldest(t *testing.T) {
	e := &edge{exports: []string{wire.SubjectTelemetry}, queue: make(chan *nats.Msg, 2)}
	e.offer(wire.SubjectTelemetry, nil, []byte("t1"))
	e.offer(wire.SubjectJobsCreate, nil, []byte("not exported"))
	e.offer(wire.SubjectTelemetry, nil, []byte("t2"))
	e.offer(wire.SubjectTelemetry, nil, []byte("t3"))
	e.offer(wire.SubjectTelemetry, nil, []byte("t4"))

	if got := e.dropped(); got != 2 {
		t.Fatalf("dropped %d, want 2 (t1 and t2)", got)
	}
	var got []string
	for len(e.queue) > 0 {
		got = append(got, string((<-e.queue).Data))
	}
	if len(got) != 2 || got[0] != "t3" || got[1] != "t4" {
		t.Fatalf("queued %q, want [t3 t4]", got)
	}

	data := []byte("t5")
	e.offer(wire.SubjectTelemetry, nil, data)
	data[1] = 'X' // the publisher reuses its buffer
	if m := <-e.queue; string(m.Data) != "t5" {
		t.Fatalf("queued %q", m.Data)
	}
	var none *edge // a bus without an edge exports nothing
	none.offer(wire.SubjectTelemetry, nil, data)
}
