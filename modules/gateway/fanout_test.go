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
	early := subscribedStream(t, h)
	h.shards[0].flushMu.Lock() // the shard is busy (frozen) while five events pass
	for i := range 5 {
		h.publish("heartbeat", []byte{byte('a' + i)})
	}
	late := subscribedStream(t, h)
	h.publish("heartbeat", []byte("f"))
	h.shards[0].flushMu.Unlock()

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

// With one shard serving clients, publish writes the frame itself before
// it returns (no wake-up of the shard's goroutine, which has not even
// started here); a shard that is writing already is poked instead, and
// takes the frame on its next pass.
func TestPublishWritesOneShardInline(t *testing.T) {
	h := newFanout(4, 16, 1)
	h.shards = h.shards[:1]
	c := subscribedStream(t, h)
	s := h.shards[0]

	h.publish("heartbeat", []byte("a"))
	select {
	case b := <-c.queue:
		if string(b) != "20\r\nid: 1\nevent: heartbeat\ndata: a\n\n\r\n" {
			t.Fatalf("client got %q", b)
		}
	default:
		t.Fatal("publish returned before the frame was handed to the client")
	}
	if len(s.wake) != 0 {
		t.Fatal("the shard was woken for a frame publish wrote")
	}

	s.flushMu.Lock() // the shard's goroutine is writing
	h.publish("heartbeat", []byte("b"))
	s.flushMu.Unlock()
	if len(c.queue) != 0 || len(s.wake) != 1 {
		t.Fatalf("busy shard: client queue %d, wake %d; want 0 and 1", len(c.queue), len(s.wake))
	}
	<-s.wake
	s.flush()
	if b := <-c.queue; string(b) != "20\r\nid: 2\nevent: heartbeat\ndata: b\n\n\r\n" {
		t.Fatalf("client got %q", b)
	}
}

// subscribedStream is a client of h on one end of a pipe, subscribed from
// the next event on; the test's end is closed when it ends.
func subscribedStream(t *testing.T, h *fanout) *stream {
	t.Helper()
	conn, peer := net.Pipe()
	t.Cleanup(func() { peer.Close() })
	c := newStream(h, sseConn{conn: conn, chunked: true, timeout: time.Second}, slog.New(slog.DiscardHandler))
	if _, _, ok := h.subscribe(c, resume{}); !ok {
		t.Fatal("subscribe refused")
	}
	return c
}
