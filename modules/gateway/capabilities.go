package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive/bus"
)

// capabilitiesTimeout bounds the wait for the capabilities module; a
// detection runs nvidia-smi with its own 5 s timeout.
const capabilitiesTimeout = 10 * time.Second

// getCapabilities serves GET /capabilities and /v1/capabilities. A
// ?queen_url= is validated and handed to discovery; the devices are
// answered either way.
func (g *Gateway) getCapabilities(nc *nats.Conn) gin.HandlerFunc {
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
			if err := bus.ValidateQueenURL(vals[0]); err != nil {
				abortJSON(c, http.StatusBadRequest, err.Error())
				return
			}
			ctrl := g.check(c, control)
			b, _ := json.Marshal(bus.QueenURL{URL: vals[0], Authorized: ctrl.status == 0})
			ctx, cancel := context.WithTimeout(c.Request.Context(), busTimeout)
			m, err := nc.RequestWithContext(ctx, bus.SubjectDiscoveryQueen, b)
			cancel()
			if err != nil {
				abortJSON(c, http.StatusServiceUnavailable, "discovery unavailable: "+err.Error())
				return
			}
			var e bus.ErrorReply
			if json.Unmarshal(m.Data, &e) == nil && e.Error != "" {
				if e.Code == bus.CodeForbidden && ctrl.status != 0 {
					// Not the Queen in use, and this client may not change
					// it: say why in the access policy's words.
					g.deny(c, ctrl)
					return
				}
				if e.RetryAfter > 0 {
					c.Header("Retry-After", strconv.Itoa(e.RetryAfter))
				}
				abortJSON(c, codeStatus(e.Code), e.Error)
				return
			}
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), capabilitiesTimeout)
		defer cancel()
		m, err := nc.RequestWithContext(ctx, bus.SubjectCapabilitiesGet, nil)
		if err != nil {
			abortJSON(c, http.StatusServiceUnavailable, "capabilities unavailable: "+err.Error())
			return
		}
		var caps bus.Capabilities
		if err := json.Unmarshal(m.Data, &caps); err != nil || caps.Devices == nil {
			abortJSON(c, http.StatusServiceUnavailable, "capabilities unavailable: bad reply")
			return
		}
		c.Data(http.StatusOK, "application/json", m.Data)
	}
}
