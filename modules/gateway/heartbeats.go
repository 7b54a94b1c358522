package gateway

import (
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// streamHeartbeats serves GET /v1/heartbeats/stream: the latest event at
// once (or the events after Last-Event-ID), then one event per tick.
func (g *Gateway) streamHeartbeats(c *gin.Context) {
	r := resume{}
	var notes []string
	raw := c.GetHeader("Last-Event-ID")
	if raw == "" {
		raw = c.Query("lastEventId") // EventSource cannot set headers on its first connect
	}
	if raw != "" {
		id, err := strconv.ParseUint(strings.TrimSpace(raw), 10, 64)
		if err != nil {
			notes = append(notes, "malformed Last-Event-ID "+strconv.Quote(truncate(raw, 64))+" ignored; starting from the latest event")
		} else {
			r = resume{lastID: id, hasLast: true}
		}
	}

	write := g.startSSE(c.Writer)

	cl, backlog, note := g.fanout.subscribe(r)
	defer g.fanout.unsubscribe(cl)
	if note != "" {
		notes = append(notes, note)
	}

	// The retry hint and any notes go in the first event's own block: a
	// block without data is an empty event to some clients (r3labs/sse,
	// go-sse), which then fail to decode it.
	var lead strings.Builder
	for _, n := range notes {
		lead.WriteString(": " + n + "\n")
	}
	lead.WriteString("retry: " + strconv.FormatInt(g.cfg.RetryHint.Milliseconds(), 10) + "\n")
	pending := []byte(lead.String())
	send := func(f []byte) bool {
		if pending != nil {
			f = append(pending, f...)
			pending = nil
		}
		return write(f)
	}
	if !write(nil) { // headers out: the client knows it is connected
		return
	}
	for _, f := range backlog {
		if !send(f) {
			return
		}
	}

	// No timer per client: the fan-out sends keep-alives to everyone when
	// the stream has been quiet (keepAlives), so an event costs a client
	// one channel receive and one write, no timer reset.
	ctx := c.Request.Context()
	for {
		select {
		case <-ctx.Done():
			return
		case <-cl.kicked:
			g.log.Warn("SSE client too slow, disconnected", "remote", c.ClientIP(), "queue", g.fanout.queueSize)
			return
		case <-g.stopping:
			// Shutting down: hand over what is queued (the "stopping"
			// event among it), then end the stream.
			for {
				select {
				case f := <-cl.queue:
					if !send(f) {
						return
					}
				default:
					return
				}
			}
		case f := <-cl.queue:
			if !send(f) {
				return
			}
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
