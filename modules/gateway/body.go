package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// bodyDeadline puts every request that has a body under the body
// deadline before any check runs: a request refused before its body is
// read still has that body drained by net/http after the handler, and a
// client sending it one byte at a time must not hold the connection.
// readBody lifts the deadline once the body is in.
func (g *Gateway) bodyDeadline(c *gin.Context) {
	r := c.Request
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(g.cfg.BodyTimeout))
	}
}

// readBody reads a request's whole body, at most limit bytes, before the
// handler runs, under a deadline of its own: a client that sends one byte
// every few seconds loses its connection (408) instead of holding it. The
// handler then reads the body from memory. A request without a body
// passes untouched.
func (g *Gateway) readBody(limit int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		r := c.Request
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			return
		}
		if r.ContentLength > limit {
			abortJSON(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", limit))
			return
		}
		rc := http.NewResponseController(c.Writer)
		b, err := io.ReadAll(http.MaxBytesReader(c.Writer, r.Body, limit))
		if err != nil {
			// The deadline stays: net/http drains what is left of the
			// body after the answer, and must not wait for it.
			var tooBig *http.MaxBytesError
			switch {
			case errors.As(err, &tooBig):
				abortJSON(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", limit))
			case errors.Is(err, os.ErrDeadlineExceeded):
				c.Header("Connection", "close")
				abortJSON(c, http.StatusRequestTimeout, fmt.Sprintf("body not received within %v", g.cfg.BodyTimeout))
			default:
				abortJSON(c, http.StatusBadRequest, "read body: "+err.Error())
			}
			return
		}
		_ = rc.SetReadDeadline(time.Time{})
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
}

// noBody refuses a body on routes that take none, so that no byte of one
// is ever waited for.
func noBody(c *gin.Context) {
	r := c.Request
	if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
		c.Header("Connection", "close")
		abortJSON(c, http.StatusBadRequest, r.Method+" "+r.URL.Path+" takes no body")
	}
}

// requireJSON answers 415 unless the body is declared as UTF-8 JSON. A
// cross-site form or fetch without a preflight can send only form and
// text types, so this also closes the simplest CSRF path. DELETE may come
// without a body and then without a Content-Type.
func requireJSON(c *gin.Context) {
	ct := c.GetHeader("Content-Type")
	if ct == "" && c.Request.Method == http.MethodDelete && c.Request.ContentLength == 0 {
		return
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		abortJSON(c, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			abortJSON(c, http.StatusUnsupportedMediaType, "Content-Type must be application/json (charset utf-8 only)")
			return
		}
	}
}
