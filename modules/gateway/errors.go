package gateway

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/rbee/hive/bus/wire"
)

// apiError is every error body the gateway sends.
type apiError struct {
	Error string `json:"error"`
}

// codeStatus maps a bus error code to the HTTP status it answers.
func codeStatus(code string) int {
	switch code {
	case wire.CodeInvalid:
		return http.StatusBadRequest
	case wire.CodeNotFound:
		return http.StatusNotFound
	case wire.CodeBusy:
		return http.StatusServiceUnavailable
	case wire.CodeConflict:
		return http.StatusConflict
	case wire.CodeForbidden:
		return http.StatusForbidden
	case wire.CodeRateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

func abortJSON(c *gin.Context, status int, msg string) {
	c.AbortWithStatusJSON(status, apiError{Error: msg})
}

// recoverJSON turns a handler panic into a 500 JSON error; the process and
// every other client carry on.
func (g *Gateway) recoverJSON(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			g.log.Error("handler panic", "path", c.Request.URL.Path, "panic", v)
			if !c.Writer.Written() {
				abortJSON(c, http.StatusInternalServerError, "internal error")
			} else {
				c.Abort()
			}
		}
	}()
	c.Next()
}
