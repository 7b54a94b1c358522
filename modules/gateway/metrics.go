package gateway

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/rbee/hive/bus"
)

// metrics serves GET /metrics: the metrics module's Prometheus exposition,
// passed through. The gateway computes nothing here, so a scrape costs the
// same whatever the number of SSE clients.
func (g *Gateway) metrics(nc *bus.Conn) gin.HandlerFunc {
	return func(c *gin.Context) {
		out, ok := call[struct{}, bus.MetricsScrape](c, nc, "metrics", bus.SubjectMetricsScrape, struct{}{})
		if !ok {
			return
		}
		c.Data(http.StatusOK, out.ContentType, []byte(out.Body))
	}
}
