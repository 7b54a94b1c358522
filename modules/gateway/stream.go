package gateway

import (
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
