package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
)

// capabilitiesTimeout bounds the wait for the capabilities module; a
// detection runs nvidia-smi with its own 5 s timeout.
const capabilitiesTimeout = 10 * time.Second

// getCapabilities serves GET /capabilities and /v1/capabilities. A
// ?queen_url= is validated and handed to discovery; the devices are
// answered either way.
func (g *Gateway) getCapabilities(nc *bus.Conn) gin.HandlerFunc {
	return func(c *gin.Context) {
		q, err := url.ParseQuery(c.Request.URL.RawQuery)
		if err != nil {
			abortJSON(c, http.StatusBadRequest, "bad query string: "+err.Error())
			return
		}
		// Reading capabilities is a read; a queen_url is a state change,
		// decided by discovery (which knows the Queen in use, the allowed
		// hosts and the rate) with what this client may do.
		if d := g.check(c, read); d.status != 0 {
			g.deny(c, d)
			return
		}
		if vals, ok := q["queen_url"]; ok {
			if len(vals) != 1 {
				abortJSON(c, http.StatusBadRequest, "queen_url given more than once")
				return
			}
			if err := wire.ValidateQueenURL(vals[0]); err != nil {
				abortJSON(c, http.StatusBadRequest, err.Error())
				return
			}
			ctrl := g.check(c, control)
			ctx, cancel := context.WithTimeout(c.Request.Context(), busTimeout)
			_, err := bus.Request[wire.QueenURL, wire.QueenAccepted](ctx, nc, wire.SubjectDiscoveryQueen, wire.QueenURL{URL: vals[0], Authorized: ctrl.status == 0})
			cancel()
			var re *bus.ReplyError
			if errors.As(err, &re) && re.Code == wire.CodeForbidden && ctrl.status != 0 {
				// Not the Queen in use, and this client may not change it:
				// say why in the access policy's words.
				g.deny(c, ctrl)
				return
			}
			if err != nil {
				replyError(c, "discovery", err)
				return
			}
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), capabilitiesTimeout)
		defer cancel()
		caps, err := bus.RequestCapabilities(ctx, nc)
		if err != nil || caps.Devices == nil {
			abortJSON(c, http.StatusServiceUnavailable, fmt.Sprintf("capabilities unavailable: %v", cmp.Or(err, errors.New("no devices in the reply"))))
			return
		}
		b, _ := json.Marshal(caps)
		c.Data(http.StatusOK, "application/json", b)
	}
}
