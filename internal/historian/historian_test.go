package historian

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
)

// from is a request from addr, as a shared service import delivers it.
func from(addr, reply, body string) *nats.Msg {
	m := nats.NewMsg("hive.history.get")
	m.Reply = reply
	m.Data = []byte(body)
	m.Header.Set("Nats-Request-Info", fmt.Sprintf(`{"acc":"HISTORY","host":%q,"id":7}`, addr))
	return m
}

const ask = `{"next_by_subj":"hive.telemetry.h1","batch":9999,"max_bytes":1073741824,"seq":1}`

// Slots go to the waiting addresses in turn: a client that asks without
// pause has one request in flight and one waiting, the rest refused at
// once, and a client that asks once is served next, not after the flood.
func TestFairTurns(t *testing.T) {
	h := New(Config{PerClient: 1, InFlight: 1}, nil, nil)
	h.ctx = context.Background()
	var mu sync.Mutex
	var order []string
	release := make(chan struct{})
	h.serveFn = func(_ context.Context, reply string, req request) {
		mu.Lock()
		order = append(order, reply)
		mu.Unlock()
		if req.Batch != 256 || req.MaxBytes != 512<<10 {
			t.Errorf("request not capped: batch %d, max bytes %d", req.Batch, req.MaxBytes)
		}
		<-release
	}
	var busy int
	for i := range 10 {
		if err := h.admit(from("10.0.0.1", fmt.Sprintf("flood-%d", i), ask)); err == errBusy {
			busy++
		}
	}
	if err := h.admit(from("10.0.0.2", "honest", ask)); err != nil {
		t.Fatalf("the honest request: %v", err)
	}
	if busy != 8 {
		t.Errorf("%d of the flood's 10 refused, want 8 (one in flight, one waiting)", busy)
	}
	for range 3 {
		release <- struct{}{}
	}
	h.wg.Wait()
	// The flood's waiting request was first in the ring, the honest one
	// next: it waits one batch, not the flood's length.
	if want := "[flood-0 flood-1 honest]"; fmt.Sprint(order) != want {
		t.Errorf("served %v, want %s", order, want)
	}
	if len(h.clients) != 0 || h.total != 0 {
		t.Errorf("state left: %d clients, %d in flight", len(h.clients), h.total)
	}
}

func TestRefusesWhatIsNotOneHive(t *testing.T) {
	h := New(Config{}, nil, nil)
	for _, body := range []string{
		`{"next_by_subj":"hive.telemetry.>","batch":1}`,
		`{"next_by_subj":"hive.telemetry.*"}`,
		`{"next_by_subj":"$JS.API.STREAM.DELETE.HIVE_TELEMETRY"}`,
		`{"last_by_subj":"hive.telemetry.a","next_by_subj":"hive.telemetry.b"}`,
		`{"seq":1}`,
		`not json`,
	} {
		if err := h.admit(from("10.0.0.3", "r", body)); err != errBadRequest {
			t.Errorf("%s: %v, want 400", body, err)
		}
	}
	if _, err := h.parse([]byte(`{"next_by_subj":"hive.telemetry.gpu-07.dc1","batch":5}`)); err != nil {
		t.Errorf("a dotted hive id: %v", err)
	}
}
