package gateway

import (
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// stream is one SSE client's connection, taken over from net/http once the
// request is accepted. It is in one of two modes:
//
//   - direct: its shard writes each frame in place, without blocking. This
//     is the steady state of a client that keeps up, and costs one write
//     system call per event, no goroutine wake-up, no channel.
//   - queued: a write the socket could not take at once (or the backlog
//     at connect) is being sent by the stream's own goroutine (drain),
//     under the write deadline; frames meanwhile wait in a bounded queue.
//     A frame that finds the queue full is dropped and the client cut.
//     Once the queue is empty the stream goes back to direct.
//
// A goroutine blocked in Read sees the client hang up at once, so a gone
// client leaves even while no event is sent.
type stream struct {
	sseConn
	h   *fanout
	raw syscall.RawConn // nil: no direct writes; drain sends everything
	log *slog.Logger

	after uint64 // frames after it are the shard's to send; set by subscribe
	// wantsLive: the client asked for live events (?events=load), those
	// after liveAfter.
	wantsLive bool
	liveAfter uint64
	shard     *shard
	idx       int // position in shard.clients, -1 once removed; guarded by shard.mu

	mu     sync.Mutex
	direct bool
	ended  bool
	queue  chan []byte // a nil entry ends the stream

	endOnce sync.Once
	done    chan struct{} // closed by end
	onEnd   func()        // run once by end, if set before the stream is shared
}

func newStream(h *fanout, sc sseConn, log *slog.Logger) *stream {
	c := &stream{sseConn: sc, h: h, log: log, idx: -1,
		queue: make(chan []byte, h.queueSize), done: make(chan struct{})}
	if sc, ok := sc.conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil && rawWriteSupported {
			c.raw = raw
		}
	}
	return c
}

// send hands f to the client without blocking. kick says whether a full
// queue cuts the client (an event) or just skips f (a keep-alive).
func (c *stream) send(f frame, kick bool) {
	b := c.bytes(f)
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	if c.direct {
		n, err := tryWrite(c.raw, b)
		if err != nil {
			c.mu.Unlock()
			c.end()
			return
		}
		if n < len(b) {
			// The socket is full: the rest goes out from the stream's own
			// goroutine, and frames queue behind it. The queue is empty
			// while direct, so this cannot block.
			c.direct = false
			c.h.stalls.Add(1)
			c.queue <- b[n:]
			c.h.streams.Add(1)
			go c.drain()
		}
		c.mu.Unlock()
		return
	}
	select {
	case c.queue <- b:
		c.mu.Unlock()
	default:
		c.mu.Unlock()
		if kick {
			c.h.dropped.Add(1)
			c.kick("SSE client too slow, disconnected")
		}
	}
}

// drain writes queued frames, under the write deadline each, until the
// queue is empty; then it hands the stream back to its shard (direct) and
// returns. The streams WaitGroup counts it.
func (c *stream) drain() {
	defer c.h.streams.Done()
	for {
		var b []byte
		select {
		case b = <-c.queue:
		case <-c.done:
			return
		default:
			// Direct writes check the deadline too (the runtime fails
			// them once it has passed): it bounds drain's writes only.
			if c.raw != nil {
				_ = c.conn.SetWriteDeadline(time.Time{})
			}
			c.mu.Lock()
			if len(c.queue) == 0 && c.raw != nil && !c.ended {
				c.direct = true
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			select {
			case b = <-c.queue:
			case <-c.done:
				return
			}
		}
		if b == nil {
			if c.chunked {
				_ = c.write(lastChunk)
			}
			c.end()
			return
		}
		if err := c.write(b); err != nil {
			c.end()
			return
		}
	}
}

// finish ends the stream after what was sent to it (the fan-out closes).
// A client too far behind to take the end is cut.
func (c *stream) finish() {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	if c.direct {
		if c.chunked {
			_, _ = tryWrite(c.raw, lastChunk) // best effort: the socket had room a moment ago
		}
		c.mu.Unlock()
		c.end()
		return
	}
	select {
	case c.queue <- nil:
		c.mu.Unlock()
	default:
		c.mu.Unlock()
		c.end()
	}
}

// read waits for the client to hang up; anything it sends is discarded
// (an SSE connection is never reused for another request).
func (c *stream) read() {
	defer c.h.streams.Done()
	var buf [128]byte
	for {
		if _, err := c.conn.Read(buf[:]); err != nil {
			c.end()
			return
		}
	}
}

// kick cuts a client that fell behind, counted once.
func (c *stream) kick(why string) {
	if c.end() {
		c.h.kicked.Add(1)
		c.log.Warn(why, "remote", c.conn.RemoteAddr().String(), "queue", c.h.queueSize)
	}
}

// end closes the connection and forgets the client; it reports whether
// this call did it.
func (c *stream) end() bool {
	did := false
	c.endOnce.Do(func() {
		did = true
		c.mu.Lock()
		c.ended = true
		c.mu.Unlock()
		close(c.done)
		if c.shard != nil {
			c.shard.remove(c)
		}
		_ = c.conn.Close()
		if c.onEnd != nil {
			c.onEnd()
		}
	})
	return did
}
