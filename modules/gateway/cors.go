package gateway

import (
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// cors lets pages of the allowed origins read the read-only routes
// (streams, capabilities, health) with EventSource or fetch. It is never
// on a state-changing route: there the browser's preflight fails, and the
// access checks refuse a cross-site request anyway.
func (g *Gateway) cors(c *gin.Context) {
	origin := c.GetHeader("Origin")
	origins := *g.corsOrigins.Load()
	if origin == "" || len(origins) == 0 {
		return
	}
	h := c.Writer.Header()
	switch {
	case slices.Contains(origins, "*"):
		h.Set("Access-Control-Allow-Origin", "*")
	case slices.ContainsFunc(origins, func(o string) bool { return strings.EqualFold(o, origin) }):
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
	default:
		return
	}
	h.Set("Access-Control-Expose-Headers", "Retry-After, WWW-Authenticate")
}

// preflight answers OPTIONS on a read-only route.
func (g *Gateway) preflight(c *gin.Context) {
	g.cors(c)
	h := c.Writer.Header()
	if h.Get("Access-Control-Allow-Origin") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Last-Event-ID, Cache-Control")
		h.Set("Access-Control-Max-Age", "600")
	}
	c.Status(http.StatusNoContent)
}

// SetCORSOrigins replaces the origins that may read the read-only routes
// while the gateway runs (a reload); none turns CORS off.
func (g *Gateway) SetCORSOrigins(origins []string) {
	o := slices.Clone(origins)
	g.corsOrigins.Store(&o)
}
