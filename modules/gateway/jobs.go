package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive/bus"
)

// maxJobBody bounds POST /v1/jobs bodies; maxSmallBody the bodies of
// routes that read none (a client may still send "{}").
const (
	maxJobBody   = 64 << 10
	maxSmallBody = 4 << 10
)

// busTimeout bounds a request to the jobs module.
const busTimeout = 5 * time.Second

// request sends v (or raw bytes) on subject and decodes the reply into out.
// An ErrorReply becomes an HTTP error answered here; ok is false then.
func (g *Gateway) request(c *gin.Context, nc *nats.Conn, subject string, body []byte, out any) bool {
	ctx, cancel := context.WithTimeout(c.Request.Context(), busTimeout)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, subject, body)
	if err != nil {
		abortJSON(c, http.StatusServiceUnavailable, "jobs unavailable: "+err.Error())
		return false
	}
	var e bus.ErrorReply
	if json.Unmarshal(m.Data, &e) == nil && e.Error != "" {
		if e.RetryAfter > 0 {
			c.Header("Retry-After", strconv.Itoa(e.RetryAfter))
		}
		abortJSON(c, codeStatus(e.Code), e.Error)
		return false
	}
	if err := json.Unmarshal(m.Data, out); err != nil {
		abortJSON(c, http.StatusBadGateway, "bad reply from jobs: "+err.Error())
		return false
	}
	return true
}

// createJob serves POST /v1/jobs. The body is checked to be a JSON object
// with an "operation" string here; the jobs module validates the rest.
func (g *Gateway) createJob(nc *nats.Conn) gin.HandlerFunc {
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
		var out bus.JobCreated
		if g.request(c, nc, bus.SubjectJobsCreate, body, &out) {
			c.JSON(http.StatusOK, out)
		}
	}
}

// jobParam returns the {id} of a job route, answering 404 for anything
// that is not a job id: an id ends up in a subject, so it must never carry
// '.', '*' or '>'.
func jobParam(c *gin.Context) (string, bool) {
	id := c.Param("id")
	if !bus.ValidJobID(id) {
		abortJSON(c, http.StatusNotFound, "job "+strconv.Quote(truncate(id, 80))+" not found")
		return "", false
	}
	return id, true
}

// cancelJob serves DELETE /v1/jobs/{id}.
func (g *Gateway) cancelJob(nc *nats.Conn) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := jobParam(c)
		if !ok {
			return
		}
		ref, _ := json.Marshal(bus.JobRef{JobID: id})
		var out bus.JobCancelled
		if g.request(c, nc, bus.SubjectJobsCancel, ref, &out) {
			c.JSON(http.StatusOK, out)
		}
	}
}

// streamJob serves GET /v1/jobs/{id}/stream: the narration so far, then
// live narration, then one end marker, as data: lines.
func (g *Gateway) streamJob(nc *nats.Conn) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := jobParam(c)
		if !ok {
			return
		}
		// Subscribe before asking for the replay, so nothing falls between;
		// events in both are told apart by Seq.
		live := make(chan *nats.Msg, 1024)
		sub, err := nc.ChanSubscribe(bus.JobEventsSubject(id), live)
		if err != nil {
			abortJSON(c, http.StatusServiceUnavailable, "bus: "+err.Error())
			return
		}
		defer func() { _ = sub.Unsubscribe() }()
		ref, _ := json.Marshal(bus.JobRef{JobID: id})
		var replay bus.JobReplay
		if !g.request(c, nc, bus.SubjectJobsReplay, ref, &replay) {
			return
		}

		write := g.startSSE(c.Writer)
		last := 0
		// emit writes ev unless already sent; more is false after the end
		// marker, ok false when the client is gone.
		emit := func(ev bus.JobEvent) (more, ok bool) {
			if ev.Seq <= last {
				return true, true
			}
			last = ev.Seq
			if ev.End != "" {
				return false, write(jobFrame(ev.End))
			}
			return true, write(jobFrame(ev.Text))
		}
		// catchUp sends what the replay has beyond last (and below upTo,
		// if set). Live events can be lost when a job outruns a slow
		// client (the subscription's channel is bounded); the replay keeps
		// them, and always keeps the end marker.
		catchUp := func(upTo int) (more, ok bool) {
			var rp bus.JobReplay
			if err := g.replay(c.Request.Context(), nc, ref, &rp); err != nil {
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
					_ = write(jobFrame(bus.EndCancelled))
				}
				return
			case m := <-live:
				var ev bus.JobEvent
				if err := json.Unmarshal(m.Data, &ev); err != nil {
					continue
				}
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
func (g *Gateway) replay(ctx context.Context, nc *nats.Conn, ref []byte, out *bus.JobReplay) error {
	ctx, cancel := context.WithTimeout(ctx, busTimeout)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, bus.SubjectJobsReplay, ref)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(m.Data, out); err != nil || out.JobID == "" {
		return fmt.Errorf("replay: %.100s", m.Data)
	}
	return nil
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
func (g *Gateway) shutdown(nc *nats.Conn) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), busTimeout)
		defer cancel()
		if _, err := nc.RequestWithContext(ctx, bus.SubjectHiveShutdown, nil); err != nil {
			abortJSON(c, http.StatusServiceUnavailable, "shutdown unavailable: "+err.Error())
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "shutting down"})
	}
}
