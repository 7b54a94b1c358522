package gateway

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// fanout sends telemetry to SSE clients. Publish never blocks: it keeps the
// frame in the history ring and wakes the writer shards, which write it to
// their clients without blocking (see stream). A client that cannot take a
// frame at once gets its own goroutine and a bounded queue; one whose
// queue is full loses the event and is disconnected (it is at least
// cap(queue) events behind).
//
// The shards replace a goroutine, a channel send and a flush per client
// per event: at 10,000 clients those cost more than the writes.
type fanout struct {
	queueSize int

	mu      sync.Mutex
	seq     uint64
	ring    []frame // the last len(ring) frames, oldest first once full
	liveSeq uint64  // live frames (livestream.go), numbered apart
	live    [liveRing]frame
	next    int // ring write position
	full    bool
	shards  []*shard
	rr      int // the shard the next client joins
	started bool
	closed  bool

	streams sync.WaitGroup // every client goroutine: readers and drainers

	published atomic.Uint64
	lastAt    atomic.Int64  // unix ns of the last event or keep-alive queued
	dropped   atomic.Uint64 // events not delivered to a slow client
	kicked    atomic.Uint64 // clients disconnected for being slow
	stalls    atomic.Uint64 // direct writes the socket could not take whole
}

// newFanout numbers events from firstID on. Its shards run from start
// until close.
func newFanout(history, queueSize int, firstID uint64) *fanout {
	if history < 1 {
		history = 1
	}
	if queueSize < 1 {
		queueSize = 1
	}
	n := min(runtime.GOMAXPROCS(0), 8)
	h := &fanout{queueSize: queueSize, seq: firstID - 1, ring: make([]frame, history)}
	for range n {
		h.shards = append(h.shards, newShard(h))
	}
	return h
}

// start runs the writer shards; close ends them.
func (h *fanout) start() {
	h.mu.Lock()
	h.started = true
	h.mu.Unlock()
	for _, s := range h.shards {
		go s.run()
	}
}

// publish assigns the next sequence number to payload, keeps it in the
// history and wakes the shards.
func (h *fanout) publish(event string, payload []byte) {
	h.mu.Lock()
	h.seq++
	h.ring[h.next] = encodeFrame(h.seq, event, payload)
	h.next = (h.next + 1) % len(h.ring)
	if h.next == 0 {
		h.full = true
	}
	h.mu.Unlock()
	h.published.Add(1)
	h.lastAt.Store(time.Now().UnixNano())
	// One shard's writes are done here, on the publisher's goroutine,
	// after the others are woken to do theirs: a hive with a few clients
	// (one shard busy) saves a goroutine wake-up per event.
	var here *shard
	for _, s := range h.shards {
		if s.n.Load() == 0 {
			continue
		}
		if here == nil {
			here = s
			continue
		}
		s.poke()
	}
	if here != nil {
		here.flushOrPoke()
	}
}

// keepAliveFrame is an SSE comment: it keeps proxies and clients from
// timing out a quiet stream and is never an event.
// keepAlive sends a keep-alive to every client when nothing was sent for
// quiet, and returns how long until the next one may be due: waiting that
// long wakes the caller once per quiet period, however often events come.
// A client that cannot take it is not kicked for it: it is behind on real
// events, which decide.
func (h *fanout) keepAlive(quiet time.Duration) time.Duration {
	if since := time.Since(time.Unix(0, h.lastAt.Load())); since < quiet {
		return quiet - since
	}
	h.lastAt.Store(time.Now().UnixNano())
	for _, s := range h.shards {
		if s.n.Load() > 0 {
			s.keepAlive.Store(true)
			s.poke()
		}
	}
	return quiet
}

// resume describes where a new subscription starts.
type resume struct {
	// lastID is the client's Last-Event-ID; valid only if hasLast.
	lastID  uint64
	hasLast bool
	// all asks for every kept event (?history=all, the dashboard's first
	// connect); a Last-Event-ID wins over it.
	all bool
}

// subscribe registers c and returns the frames it must be sent first,
// atomically with registration: c is sent every frame after them. note is
// a human explanation when the requested resume point could not be
// honoured, "" otherwise. ok is false once the fan-out has closed. The
// caller then runs c.drain, and c.read where the stream has a raw
// connection to read (a TLS stream has none), which the fan-out waits
// for on close.
func (h *fanout) subscribe(c *stream, r resume) (backlog []frame, note string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, "", false
	}
	c.after, c.liveAfter = h.seq, h.liveSeq
	if c.raw != nil {
		h.streams.Add(2) // the caller's drain and c.read
	} else {
		h.streams.Add(1) // the drain alone
	}
	s := h.shards[h.rr%len(h.shards)]
	h.rr++
	s.add(c)
	hist := h.history()
	if len(hist) == 0 {
		return nil, "", true
	}
	latest := hist[len(hist)-1]
	if !r.hasLast {
		if r.all {
			return append(backlog, hist...), "", true
		}
		return []frame{latest}, "", true
	}
	switch oldest := hist[0].seq; {
	case r.lastID > latest.seq:
		return []frame{latest}, "Last-Event-ID " + strconv.FormatUint(r.lastID, 10) +
			" is unknown (the hive restarted?); resuming from the latest event", true
	case r.lastID+1 < oldest:
		return []frame{latest}, "Last-Event-ID " + strconv.FormatUint(r.lastID, 10) +
			" is older than the history (oldest " + strconv.FormatUint(oldest, 10) + "); events were lost, resuming from the latest event", true
	}
	for _, f := range hist {
		if f.seq > r.lastID {
			backlog = append(backlog, f)
		}
	}
	return backlog, "", true
}

// framesAfter appends to out the kept frames after seq, oldest first, and
// returns the oldest kept frame's seq.
func (h *fanout) framesAfter(seq uint64, out []frame) ([]frame, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seq == seq {
		return out, 0
	}
	hist := h.history()
	for _, f := range hist {
		if f.seq > seq {
			out = append(out, f)
		}
	}
	return out, hist[0].seq
}

// history returns the kept frames oldest first; the caller holds h.mu.
func (h *fanout) history() []frame {
	if !h.full {
		return h.ring[:h.next]
	}
	out := make([]frame, 0, len(h.ring))
	out = append(out, h.ring[h.next:]...)
	return append(out, h.ring[:h.next]...)
}

func (h *fanout) numClients() int {
	n := 0
	for _, s := range h.shards {
		s.mu.Lock()
		n += len(s.clients)
		s.mu.Unlock()
	}
	return n
}

// close ends every stream after the frames published before it, and
// waits up to wait for the clients to be sent them; then it cuts the
// rest. No client joins after close.
func (h *fanout) close(wait time.Duration) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	started := h.started
	h.mu.Unlock()
	for _, s := range h.shards {
		close(s.done)
		if started {
			<-s.stopped()
		} else {
			s.finishAll() // no shard goroutine ever ran: end its streams here
		}
	}
	ended := make(chan struct{})
	go func() { h.streams.Wait(); close(ended) }()
	select {
	case <-ended:
		return
	case <-time.After(wait):
	}
	for _, s := range h.shards {
		for _, c := range s.snapshot(nil) {
			c.end()
		}
	}
	<-ended
}

// encodeFrame renders one SSE event as an HTTP/1.1 chunk. A payload with
// line breaks becomes several data: lines, as the SSE spec requires;
// event is a fixed name.
func encodeFrame(seq uint64, event string, payload []byte) frame {
	var b bytes.Buffer
	b.Grow(len(payload) + 64)
	b.WriteString("id: ")
	b.WriteString(strconv.FormatUint(seq, 10))
	b.WriteString("\nevent: ")
	b.WriteString(event)
	b.WriteByte('\n')
	writeData(&b, payload)
	b.WriteByte('\n')
	return newFrame(seq, b.Bytes())
}
