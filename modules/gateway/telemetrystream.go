package gateway

import (
	"net"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/rbee/hive/internal/text"
)

// streamRequest reads what a stream asks for: where to resume
// (Last-Event-ID or ?lastEventId, ?history=all), whether it takes live
// load events (?events=load), and a note for each part it ignores.
func streamRequest(c *gin.Context) (r resume, live bool, notes []string) {
	raw := c.GetHeader("Last-Event-ID")
	if raw == "" {
		raw = c.Query("lastEventId") // EventSource cannot set headers on its first connect
	}
	switch h := c.Query("history"); h {
	case "":
	case "all":
		r.all = true
	default:
		notes = append(notes, "history="+strconv.Quote(text.Truncate(h, 16))+" ignored (history=all asks for every kept event)")
	}
	live, note := streamEvents(c.Query("events"))
	if note != "" {
		notes = append(notes, note)
	}
	if raw != "" {
		id, err := strconv.ParseUint(strings.TrimSpace(raw), 10, 64)
		if err != nil {
			notes = append(notes, "malformed Last-Event-ID "+strconv.Quote(text.Truncate(raw, 64))+" ignored; starting from the latest event")
		} else {
			r = resume{lastID: id, hasLast: true}
		}
	}
	return r, live, notes
}

// sseTelemetryEvent names the telemetry events on the SSE stream (the
// original's wire: "event: heartbeat"). The legacy POST to the Queen is
// the other "heartbeat" (wire.HiveHeartbeat); in code, the stream is
// telemetry.
const sseTelemetryEvent = "heartbeat"

// streamTelemetry serves GET /v1/heartbeats/stream: the latest event at
// once (or the events after Last-Event-ID, or with ?history=all every
// kept event), then one event per tick.
func (g *Gateway) streamTelemetry(c *gin.Context) {
	r, live, notes := streamRequest(c)
	sc, ok := hijackSSE(c, g.cfg.WriteTimeout)
	if !ok {
		return
	}
	st := newStream(g.fanout, sc, g.log)
	st.wantsLive = live
	st.onEnd = g.streams.hold(c.Request, sc.conn) // a revoked token ends it
	backlog, note, ok := g.fanout.subscribe(st, r)
	if !ok { // shutting down
		_ = sc.conn.Close()
		return
	}
	if note != "" {
		notes = append(notes, note)
	}
	// A stream its shard cannot write to directly (TLS: each connection
	// encrypts its own records) is drained for good by a goroutine of its
	// own, and has no reader: this handler returns and net/http lets go
	// of its buffers, and a hang-up is seen by the next write (an event a
	// second, a keep-alive at most every 15 s). That keeps a TLS stream to
	// one small goroutine and its tls.Conn. subscribe counted each.
	tlsPath := st.raw == nil
	if !tlsPath {
		go st.read()
	}

	// The head, the retry hint, any notes and the backlog go out in one
	// write. The hint and notes have no blank line of their own: they
	// belong to the first event's block, as a block without data is an
	// empty event to some clients (r3labs/sse, go-sse), which then fail to
	// decode it.
	var lead strings.Builder
	for _, n := range notes {
		lead.WriteString(": " + n + "\n")
	}
	lead.WriteString("retry: " + strconv.FormatInt(g.cfg.RetryHint.Milliseconds(), 10) + "\n")
	// The backlog is written from the fan-out's own frames, which every
	// client shares (writev on plain TCP): a client that resumes from an
	// old id, or asks for ?history=all and never reads, holds no copy of
	// the history, only the slices that name it.
	bufs := make(net.Buffers, 0, len(backlog)+1)
	bufs = append(bufs, sc.head(c.Writer.Header(), lead.String()))
	for _, f := range backlog {
		bufs = append(bufs, st.bytes(f))
	}
	if err := st.writeBuffers(bufs); err != nil {
		st.end() // drain then returns at once
	}
	// Events published since subscribe are queued; drain sends them and
	// hands the stream to its shard.
	if tlsPath {
		go st.drain()
		return
	}
	st.drain()
}
