package gateway

import (
	"bytes"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// startSSE answers 200 with the event-stream headers and returns the
// stream's writer: each chunk goes out under its own write deadline and is
// flushed at once. A false return means the client is gone or too slow.
// http.Server.WriteTimeout would cut every long stream, so deadlines are
// set per write instead.
func (g *Gateway) startSSE(w gin.ResponseWriter) func([]byte) bool {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	return func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout))
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
