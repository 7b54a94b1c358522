package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
)

// shutdown serves POST /v1/shutdown: answered first, then the hive stops
// gracefully.
func (g *Gateway) shutdown(nc *bus.Conn) gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, ok := call[struct{}, json.RawMessage](c, nc, "shutdown", wire.SubjectHiveShutdown, struct{}{}); ok {
			c.JSON(http.StatusOK, gin.H{"status": "shutting down"})
		}
	}
}
