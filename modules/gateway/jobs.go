package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
)

// maxJobBody bounds POST /v1/jobs bodies; maxSmallBody the bodies of
// routes that read none (a client may still send "{}").
const (
	maxJobBody   = 64 << 10
	maxSmallBody = 4 << 10
)

// busTimeout bounds a request to the jobs module.
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
		abortJSON(c, http.StatusNotFound, "job "+strconv.Quote(truncate(id, 80))+" not found")
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

// streamJob serves GET /v1/jobs/{id}/stream: the narration so far, then
// live narration, then one end marker, as data: lines.
func (g *Gateway) streamJob(nc *bus.Conn) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := jobParam(c)
		if !ok {
			return
		}
		// Subscribe before asking for the replay, so nothing falls between;
		// events in both are told apart by Seq.
		live, sub, err := bus.SubscribeChan[wire.JobEvent](nc, wire.JobEventsSubject(id), 1024, &g.liveDropped)
		if err != nil {
			abortJSON(c, http.StatusServiceUnavailable, "bus: "+err.Error())
			return
		}
		defer func() { _ = sub.Unsubscribe() }()
		ref := wire.JobRef{JobID: id}
		replay, ok := call[wire.JobRef, wire.JobReplay](c, nc, "jobs", wire.SubjectJobsReplay, ref)
		if !ok {
			return
		}

		// The original's narration colours its function names with ANSI
		// escapes; only a client that asks (?ansi=1) gets them.
		ansi := c.Query("ansi") == "1" || c.Query("ansi") == "true"
		frame := func(text string) []byte {
			if !ansi {
				text = stripANSI(text)
			}
			return jobFrame(text)
		}
		write := g.startSSE(c.Writer)
		last := 0
		// emit writes ev unless already sent; more is false after the end
		// marker, ok false when the client is gone.
		emit := func(ev wire.JobEvent) (more, ok bool) {
			if ev.Seq <= last {
				return true, true
			}
			last = ev.Seq
			if ev.End != "" {
				return false, write(frame(ev.End))
			}
			return true, write(frame(ev.Text))
		}
		// catchUp sends what the replay has beyond last (and below upTo,
		// if set). Live events can be lost when a job outruns a slow
		// client (the subscription's channel is bounded); the replay keeps
		// them, and always keeps the end marker.
		catchUp := func(upTo int) (more, ok bool) {
			rp, err := g.replay(c.Request.Context(), nc, ref)
			if err != nil {
				return true, true // the next keep-alive tries again
			}
			for _, ev := range rp.Events {
				if upTo > 0 && ev.Seq >= upTo {
					break
				}
				if more, ok := emit(ev); !more || !ok {
					return more, ok
				}
			}
			return true, true
		}
		if !write(nil) {
			return
		}
		for _, ev := range replay.Events {
			if more, ok := emit(ev); !more || !ok {
				return
			}
		}
		ka := time.NewTimer(g.cfg.KeepAlive)
		defer ka.Stop()
		for {
			more, ok := true, true
			select {
			case <-c.Request.Context().Done():
				return
			case <-g.stopping:
				// The hive is going down and cancels every job after the
				// gateway has stopped: send what the job said last, and
				// unless it ended, its cancellation.
				if more, ok = catchUp(0); more && ok {
					_ = write(jobFrame(wire.EndCancelled))
				}
				return
			case ev := <-live:
				if ev.Seq > last+1 {
					more, ok = catchUp(ev.Seq)
				}
				if more && ok {
					more, ok = emit(ev)
				}
			case <-ka.C:
				if ok = write([]byte(": keep-alive\n\n")); ok {
					more, ok = catchUp(0)
				}
			}
			if !more || !ok {
				return
			}
			ka.Reset(g.cfg.KeepAlive)
		}
	}
}

// replay asks the jobs module for a job's kept events.
func (g *Gateway) replay(ctx context.Context, nc *bus.Conn, ref wire.JobRef) (wire.JobReplay, error) {
	ctx, cancel := context.WithTimeout(ctx, busTimeout)
	defer cancel()
	return bus.Request[wire.JobRef, wire.JobReplay](ctx, nc, wire.SubjectJobsReplay, ref)
}

// ansiEscape matches the SGR sequences (colours, bold) of the narration.
var ansiEscape = regexp.MustCompile("\x1b\\[[0-9;]*m")

func stripANSI(s string) string {
	if !strings.Contains(s, "\x1b") {
		return s
	}
	return ansiEscape.ReplaceAllString(s, "")
}

// jobFrame renders one unnamed SSE event: every line of text a data: line
// (a trailing newline yields a last empty data: line, as the original's
// narration did). Any CR or LF in text only ever starts another data:
// line (writeData).
func jobFrame(text string) []byte {
	var b bytes.Buffer
	writeData(&b, []byte(text))
	b.WriteByte('\n')
	return b.Bytes()
}

// shutdown serves POST /v1/shutdown: answered first, then the hive stops
// gracefully.
func (g *Gateway) shutdown(nc *bus.Conn) gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, ok := call[struct{}, json.RawMessage](c, nc, "shutdown", wire.SubjectHiveShutdown, struct{}{}); ok {
			c.JSON(http.StatusOK, gin.H{"status": "shutting down"})
		}
	}
}
