package gateway

import (
	"sync"
	"sync/atomic"
)

// shard writes every frame to its share of the clients from one
// goroutine. A write never blocks it (stream.send), so a slow client
// costs the others nothing; the shards exist so that the writes of one
// event spread over the cores.
type shard struct {
	h         *fanout
	wake      chan struct{} // capacity 1: frames or a keep-alive are waiting
	done      chan struct{} // closed by fanout.close
	ended     chan struct{} // closed when run returns
	keepAlive atomic.Bool
	// n is len(clients), read without the lock: a shard without clients
	// is not woken for an event (a client that joins later gets what it
	// missed as its backlog, under the fan-out's lock).
	n atomic.Int32
	// live counts the clients that asked for live events.
	live atomic.Int32

	// Held by whoever writes to the shard's clients: run, or a publisher
	// in flushOrPoke.
	flushMu    sync.Mutex
	sent       uint64 // the last frame written
	liveSent   uint64 // the last live frame written
	scratch    []*stream
	frames     []frame
	liveFrames []frame

	mu      sync.Mutex
	clients []*stream // each at its own idx
}

func newShard(h *fanout) *shard {
	return &shard{h: h, wake: make(chan struct{}, 1), done: make(chan struct{}), ended: make(chan struct{}), sent: h.seq}
}

func (s *shard) poke() {
	select {
	case s.wake <- struct{}{}:
	default: // already pending: that wake-up takes this frame too
	}
}

func (s *shard) run() {
	defer close(s.ended)
	for {
		select {
		case <-s.wake:
			s.flushMu.Lock()
			s.flush()
			s.flushMu.Unlock()
		case <-s.done:
			s.finishAll()
			return
		}
	}
}

// flushOrPoke writes the waiting frames on the caller's goroutine when no
// one else is writing; otherwise it pokes run, whose flush may have read
// the history before the newest frame. A closed shard writes nothing.
func (s *shard) flushOrPoke() {
	if !s.flushMu.TryLock() {
		s.poke()
		return
	}
	defer s.flushMu.Unlock()
	select {
	case <-s.done:
	default:
		s.flush()
	}
}

// finishAll sends what was published before close, then ends every
// stream.
func (s *shard) finishAll() {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.flush()
	s.scratch = s.snapshot(s.scratch[:0])
	for _, c := range s.scratch {
		c.finish()
	}
	clear(s.scratch)
}

// flush writes the frames published since the last flush, and a pending
// keep-alive, to every client.
func (s *shard) flush() {
	frames, oldest := s.h.framesAfter(s.sent, s.frames[:0])
	s.frames = frames
	ka := s.keepAlive.Swap(false)
	if len(frames) == 0 && !ka && s.live.Load() == 0 {
		return
	}
	s.scratch = s.snapshot(s.scratch[:0])
	s.flushLive(s.scratch)
	for _, f := range frames {
		for _, c := range s.scratch {
			// A client that joined after f has it in its backlog; one
			// whose next frame has left the history already (the shard
			// fell that far behind) cannot be sent a whole stream.
			switch {
			case f.seq <= c.after:
			case f.seq == oldest && max(s.sent, c.after)+1 < oldest:
				c.kick("missed events the history no longer holds")
			default:
				c.send(f, true)
			}
		}
		s.sent = f.seq
	}
	if ka {
		for _, c := range s.scratch {
			c.send(keepAliveFrame, false)
		}
	}
	clear(s.scratch) // no stream is kept alive by the scratch copy
}

func (s *shard) add(c *stream) {
	s.mu.Lock()
	c.shard, c.idx = s, len(s.clients)
	s.clients = append(s.clients, c)
	s.n.Store(int32(len(s.clients)))
	if c.wantsLive {
		s.live.Add(1)
	}
	s.mu.Unlock()
}

// remove takes c out of the shard; safe to call twice.
func (s *shard) remove(c *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.idx < 0 {
		return
	}
	last := len(s.clients) - 1
	s.clients[c.idx] = s.clients[last]
	s.clients[c.idx].idx = c.idx
	s.clients[last] = nil
	s.clients = s.clients[:last]
	s.n.Store(int32(len(s.clients)))
	if c.wantsLive {
		s.live.Add(-1)
	}
	c.idx = -1
}

func (s *shard) snapshot(out []*stream) []*stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(out, s.clients...)
}

func (s *shard) stopped() <-chan struct{} { return s.ended }
