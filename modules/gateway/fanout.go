package gateway

import (
	"bytes"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// frame is one SSE event, serialised once and shared by every client.
type frame struct {
	seq  uint64
	data []byte // the complete "id: ..\nevent: ..\ndata: ..\n\n" bytes
}

// fanout sends telemetry to SSE clients. Publish never blocks: each client
// has a bounded queue, and a client whose queue is full loses the event and
// is disconnected (it is at least cap(queue) events behind).
type fanout struct {
	queueSize int

	mu      sync.Mutex
	seq     uint64
	ring    []frame // the last len(ring) frames, oldest first once full
	next    int     // ring write position
	full    bool
	clients map[*client]struct{}

	published atomic.Uint64
	lastAt    atomic.Int64  // unix ns of the last event or keep-alive queued
	dropped   atomic.Uint64 // events not delivered to a slow client
	kicked    atomic.Uint64 // clients disconnected for being slow
}

// client is one SSE subscriber's queue.
type client struct {
	queue    chan []byte
	kickOnce sync.Once
	kicked   chan struct{} // closed when the fanout gives up on this client
}

// newFanout numbers events from firstID on.
func newFanout(history, queueSize int, firstID uint64) *fanout {
	if history < 1 {
		history = 1
	}
	if queueSize < 1 {
		queueSize = 1
	}
	return &fanout{queueSize: queueSize, seq: firstID - 1, ring: make([]frame, history), clients: make(map[*client]struct{})}
}

// publish assigns the next sequence number to payload, keeps it in the
// history and queues it for every client.
func (h *fanout) publish(event string, payload []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	f := frame{seq: h.seq, data: encodeFrame(h.seq, event, payload)}
	h.ring[h.next] = f
	h.next = (h.next + 1) % len(h.ring)
	if h.next == 0 {
		h.full = true
	}
	h.published.Add(1)
	h.lastAt.Store(time.Now().UnixNano())
	for c := range h.clients {
		select {
		case c.queue <- f.data:
		default:
			h.dropped.Add(1)
			h.kick(c)
		}
	}
}

// keepAliveFrame is an SSE comment: it keeps proxies and clients from
// timing out a quiet stream and is never an event.
var keepAliveFrame = []byte(": keep-alive\n\n")

// keepAlive queues a keep-alive to every client when nothing was sent for
// quiet. A client whose queue is full is not kicked for it: it is behind
// on real events, which decide.
func (h *fanout) keepAlive(quiet time.Duration) bool {
	if time.Since(time.Unix(0, h.lastAt.Load())) < quiet {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastAt.Store(time.Now().UnixNano())
	for c := range h.clients {
		select {
		case c.queue <- keepAliveFrame:
		default:
		}
	}
	return true
}

// kick disconnects c; the caller holds h.mu.
func (h *fanout) kick(c *client) {
	delete(h.clients, c)
	c.kickOnce.Do(func() {
		h.kicked.Add(1)
		close(c.kicked)
	})
}

// resume describes where a new subscription starts.
type resume struct {
	// lastID is the client's Last-Event-ID; valid only if hasLast.
	lastID  uint64
	hasLast bool
}

// subscribe registers a client and returns the frames it must be sent
// first, atomically with registration so that no event falls in between.
// note is a human explanation when the requested resume point could not be
// honoured, "" otherwise.
func (h *fanout) subscribe(r resume) (c *client, backlog [][]byte, note string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c = &client{queue: make(chan []byte, h.queueSize), kicked: make(chan struct{})}
	h.clients[c] = struct{}{}
	hist := h.history()
	if len(hist) == 0 {
		return c, nil, ""
	}
	latest := hist[len(hist)-1]
	if !r.hasLast {
		return c, [][]byte{latest.data}, ""
	}
	switch oldest := hist[0].seq; {
	case r.lastID > latest.seq:
		return c, [][]byte{latest.data}, "Last-Event-ID " + strconv.FormatUint(r.lastID, 10) +
			" is unknown (the hive restarted?); resuming from the latest event"
	case r.lastID+1 < oldest:
		return c, [][]byte{latest.data}, "Last-Event-ID " + strconv.FormatUint(r.lastID, 10) +
			" is older than the history (oldest " + strconv.FormatUint(oldest, 10) + "); events were lost, resuming from the latest event"
	}
	for _, f := range hist {
		if f.seq > r.lastID {
			backlog = append(backlog, f.data)
		}
	}
	return c, backlog, ""
}

// unsubscribe removes c; safe after a kick.
func (h *fanout) unsubscribe(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
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
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// encodeFrame renders one SSE event. A payload with line breaks becomes
// several data: lines, as the SSE spec requires; event is a fixed name.
func encodeFrame(seq uint64, event string, payload []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(payload) + 48)
	b.WriteString("id: ")
	b.WriteString(strconv.FormatUint(seq, 10))
	b.WriteString("\nevent: ")
	b.WriteString(event)
	b.WriteByte('\n')
	writeData(&b, payload)
	b.WriteByte('\n')
	return b.Bytes()
}
