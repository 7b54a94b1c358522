package gateway

import (
	"bytes"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// startSSE answers 200 with the event-stream headers and returns the
// stream's writer: each chunk is flushed at once, under a write deadline
// between WriteTimeout/2 and WriteTimeout away. A false return means the
// client is gone or too slow. http.Server.WriteTimeout would cut every
// long stream, so the deadline is moved as the stream goes; moving it only
// when half of it is spent saves most of those calls (with 1 s events and
// a 10 s timeout, four in five). Job streams use it; telemetry streams
// are the fan-out's (stream.go).
func (g *Gateway) startSSE(w gin.ResponseWriter) func([]byte) bool {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	var deadline time.Time
	return func(b []byte) bool {
		if now := time.Now(); deadline.Sub(now) < g.cfg.WriteTimeout/2 {
			deadline = now.Add(g.cfg.WriteTimeout)
			_ = rc.SetWriteDeadline(deadline)
		}
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
}

// writeData appends payload as SSE data: lines. SSE ends a line at CR, LF
// or CRLF, so all three split here: a payload can never end its event
// early or start a forged one, whatever bytes it carries.
func writeData(b *bytes.Buffer, payload []byte) {
	for {
		i := bytes.IndexAny(payload, "\r\n")
		b.WriteString("data: ")
		if i < 0 {
			b.Write(payload)
			b.WriteByte('\n')
			return
		}
		b.Write(payload[:i])
		b.WriteByte('\n')
		if payload[i] == '\r' && i+1 < len(payload) && payload[i+1] == '\n' {
			i++
		}
		payload = payload[i+1:]
	}
}
