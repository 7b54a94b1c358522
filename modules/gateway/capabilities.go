package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
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
		if vals, ok := q["queen_url"]; ok {
			if err := bus.ValidateQueenURL(vals[0]); err != nil {
				abortJSON(c, http.StatusBadRequest, err.Error())
				return
			}
			b, _ := json.Marshal(bus.QueenURL{URL: vals[0]})
			if err := nc.Publish(bus.SubjectDiscoveryQueen, b); err != nil {
				abortJSON(c, http.StatusServiceUnavailable, "bus: "+err.Error())
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
