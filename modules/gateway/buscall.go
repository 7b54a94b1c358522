package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rbee/hive/bus"
)

// busTimeout bounds a request to another module.
const busTimeout = 5 * time.Second

// call sends req on subject to the module named what and returns its
// reply. On failure it answers the HTTP error itself, from the reply's
// code or 503 when the module does not answer, and ok is false.
func call[Req, Resp any](c *gin.Context, nc *bus.Conn, what, subject string, req Req) (resp Resp, ok bool) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), busTimeout)
	defer cancel()
	resp, err := bus.Request[Req, Resp](ctx, nc, subject, req)
	if err != nil {
		replyError(c, what, err)
		return resp, false
	}
	return resp, true
}

// replyError answers a failed bus request.
func replyError(c *gin.Context, what string, err error) {
	var re *bus.ReplyError
	if errors.As(err, &re) {
		if re.RetryAfter > 0 {
			c.Header("Retry-After", strconv.Itoa(re.RetryAfter))
		}
		abortJSON(c, codeStatus(re.Code), re.Msg)
		return
	}
	abortJSON(c, http.StatusServiceUnavailable, what+" unavailable: "+err.Error())
}
