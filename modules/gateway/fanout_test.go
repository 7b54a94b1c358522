package gateway

import (
	"log/slog"
	"net"
	"testing"
	"time"
)

// A shard that fell further behind than the history (the process was
// frozen, say) cannot send its clients a whole stream: they are cut and
// counted, so that they reconnect and are told what was lost, rather than
// miss events silently. A client that joined later lost nothing.
func TestShardBehindTheHistoryCutsItsClients(t *testing.T) {
	h := newFanout(2, 16, 1)
	h.shards = h.shards[:1]
	old, oldPeer := net.Pipe()
	defer oldPeer.Close()
	early := newStream(h, sseConn{conn: old, chunked: true, timeout: time.Second}, slog.New(slog.DiscardHandler))
	if _, _, ok := h.subscribe(early, resume{}); !ok {
		t.Fatal("subscribe refused")
	}
	for i := range 5 {
		h.publish("heartbeat", []byte{byte('a' + i)})
	}
	fresh, freshPeer := net.Pipe()
	defer freshPeer.Close()
	late := newStream(h, sseConn{conn: fresh, chunked: true, timeout: time.Second}, slog.New(slog.DiscardHandler))
	if _, _, ok := h.subscribe(late, resume{}); !ok {
		t.Fatal("subscribe refused")
	}
	h.publish("heartbeat", []byte("f"))

	h.shards[0].flush() // the shard's first flush: frames 1-3 are gone
	select {
	case <-early.done:
	default:
		t.Fatal("the client that missed frames 1-3 is still connected")
	}
	if k := h.kicked.Load(); k != 1 {
		t.Fatalf("kicked %d, want 1", k)
	}
	select {
	case <-late.done:
		t.Fatal("the client that joined after frame 5 was cut")
	case b := <-late.queue:
		if string(b) != "20\r\nid: 6\nevent: heartbeat\ndata: f\n\n\r\n" {
			t.Fatalf("late client got %q", b)
		}
	}
}
