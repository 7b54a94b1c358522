package gateway

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"

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

	conn, _, err := c.Writer.Hijack()
	if err != nil {
		abortJSON(c, http.StatusInternalServerError, "the event stream needs an HTTP/1.x connection: "+err.Error())
		return
	}
	// From here the connection is the stream's: net/http no longer times,
	// buffers or closes it. Whatever the client had sent beyond its
	// request is of no use to an event stream and is dropped.
	chunked := c.Request.ProtoAtLeast(1, 1)
	st := newStream(g.fanout, conn, chunked, g.log)
	backlog, note, ok := g.fanout.subscribe(st, r)
	if !ok { // shutting down
		_ = conn.Close()
		return
	}
	if note != "" {
		notes = append(notes, note)
	}
	go st.read()

	// Headers, the retry hint, any notes and the backlog go out in one
	// write. The hint and notes have no blank line of their own: they
	// belong to the first event's block, as a block without data is an
	// empty event to some clients (r3labs/sse, go-sse), which then fail to
	// decode it.
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	h := c.Writer.Header().Clone() // CORS and the like, set before the handler
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	if chunked {
		h.Set("Transfer-Encoding", "chunked")
	} else {
		h.Set("Connection", "close") // HTTP/1.0: the stream ends with the connection
	}
	_ = h.Write(&b)
	b.WriteString("\r\n")
	var lead strings.Builder
	for _, n := range notes {
		lead.WriteString(": " + n + "\n")
	}
	lead.WriteString("retry: " + strconv.FormatInt(g.cfg.RetryHint.Milliseconds(), 10) + "\n")
	b.Write(st.bytes(newFrame(0, []byte(lead.String()))))
	for _, f := range backlog {
		b.Write(st.bytes(f))
	}
	if err := st.write(b.Bytes()); err != nil {
		st.end()
		st.h.streams.Done() // the drain this goroutine would have been
		return
	}
	// Events published since subscribe are queued; drain sends them and
	// hands the stream to its shard.
	st.drain()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
