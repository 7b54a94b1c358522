package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/text"
)

// maxJobBody bounds POST /v1/jobs bodies; maxSmallBody the bodies of
// routes that read none (a client may still send "{}").
const (
	maxJobBody   = 64 << 10
	maxSmallBody = 4 << 10
)

// createJob serves POST /v1/jobs. The body is checked to be a JSON object
// with an "operation" string here; the jobs module validates the rest.
func (g *Gateway) createJob(nc *bus.Conn) gin.HandlerFunc {
	return func(c *gin.Context) {
		body, err := io.ReadAll(c.Request.Body) // bounded and in memory: readBody
		if err != nil {
			abortJSON(c, http.StatusBadRequest, "read body: "+err.Error())
			return
		}
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(body, &probe); err != nil {
			abortJSON(c, http.StatusBadRequest, "malformed JSON: "+err.Error())
			return
		}
		var name string
		if err := json.Unmarshal(probe["operation"], &name); err != nil || name == "" {
			abortJSON(c, http.StatusBadRequest, `body needs an "operation" string`)
			return
		}
		if out, ok := call[json.RawMessage, wire.JobCreated](c, nc, "jobs", wire.SubjectJobsCreate, body); ok {
			c.JSON(http.StatusOK, out)
		}
	}
}

// jobParam returns the {id} of a job route, answering 404 for anything
// that is not a job id: an id ends up in a subject, so it must never carry
// '.', '*' or '>'.
func jobParam(c *gin.Context) (string, bool) {
	id := c.Param("id")
	if !wire.ValidJobID(id) {
		abortJSON(c, http.StatusNotFound, "job "+strconv.Quote(text.Truncate(id, 80))+" not found")
		return "", false
	}
	return id, true
}

// cancelJob serves DELETE /v1/jobs/{id}.
func (g *Gateway) cancelJob(nc *bus.Conn) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := jobParam(c)
		if !ok {
			return
		}
		if out, ok := call[wire.JobRef, wire.JobCancelled](c, nc, "jobs", wire.SubjectJobsCancel, wire.JobRef{JobID: id}); ok {
			c.JSON(http.StatusOK, out)
		}
	}
}
