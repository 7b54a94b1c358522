package gateway

import (
	"bytes"
	"strings"
)

// Live frames are events only the streams that ask for them get
// (?events=load): kept out of the history ring, which the heartbeats'
// resume and ?history=all rely on, and written without an id, so a
// client's Last-Event-ID stays that of its last heartbeat. Each has a
// sequence of its own; the fan-out keeps the last liveRing of them for
// shards that are behind.
const liveRing = 64

// sseLoadEvent names the hive.load events on the SSE stream.
const sseLoadEvent = "load"

// publishLive hands an event to the streams that asked for live events.
func (h *fanout) publishLive(event string, payload []byte) {
	var b bytes.Buffer
	b.Grow(len(payload) + 32)
	b.WriteString("event: ")
	b.WriteString(event)
	b.WriteByte('\n')
	writeData(&b, payload)
	b.WriteByte('\n')
	h.mu.Lock()
	h.liveSeq++
	h.live[h.liveSeq%liveRing] = newFrame(h.liveSeq, b.Bytes())
	h.mu.Unlock()
	for _, s := range h.shards {
		if s.live.Load() > 0 {
			s.poke()
		}
	}
}

// liveAfter appends to out the kept live frames after seq, oldest first,
// and returns the newest live sequence.
func (h *fanout) liveAfter(seq uint64, out []frame) ([]frame, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for n := max(seq+1, h.liveSeq+1-min(h.liveSeq, liveRing)); n <= h.liveSeq; n++ {
		out = append(out, h.live[n%liveRing])
	}
	return out, h.liveSeq
}

// flushLive writes the live frames published since the last flush to the
// shard's streams that asked for them. A stream that cannot take one at
// once skips it: live events are a head start on the next heartbeat, not
// a record.
func (s *shard) flushLive(clients []*stream) {
	if s.live.Load() == 0 {
		return
	}
	var newest uint64
	s.liveFrames, newest = s.h.liveAfter(s.liveSent, s.liveFrames[:0])
	for _, f := range s.liveFrames {
		for _, c := range clients {
			if c.wantsLive && f.seq > c.liveAfter {
				c.send(f, false)
			}
		}
	}
	s.liveSent = newest
}

// streamEvents reads ?events=: the event names a stream asks for besides
// its heartbeats; a note for what it does not know.
func streamEvents(q string) (live bool, note string) {
	var unknown []string
	for _, e := range strings.Split(q, ",") {
		switch strings.TrimSpace(e) {
		case "", sseTelemetryEvent:
		case sseLoadEvent:
			live = true
		default:
			unknown = append(unknown, e)
		}
	}
	if len(unknown) > 0 {
		note = "events=" + strings.Join(unknown, ",") + " ignored (known: heartbeat, load)"
	}
	return live, note
}
