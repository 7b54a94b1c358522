package gateway

import (
	"embed"
	"net/http"

	"github.com/gin-gonic/gin"
)

// The live dashboard: static files, built into the binary, no CDN. The
// page reads the telemetry stream like any other client, so it shows what
// the access policy lets the browser read.
//
//go:embed dashboard/index.html dashboard/dashboard.js dashboard/dashboard.css
var dashboard embed.FS

// dashboardCSP keeps the page to its own origin: its script and style
// files, and the stream.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func dashboardFile(name, contentType string) gin.HandlerFunc {
	b, err := dashboard.ReadFile("dashboard/" + name)
	if err != nil {
		panic("gateway: dashboard file missing from the build: " + name)
	}
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", dashboardCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		c.Data(http.StatusOK, contentType, b)
	}
}
