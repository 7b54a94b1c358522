package gateway

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
)

// streamJob serves GET /v1/jobs/{id}/stream: the narration so far, then
// live narration, then one end marker, as data: lines.
func (g *Gateway) streamJob(nc *bus.Conn) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := jobParam(c)
		if !ok {
			return
		}
		// Counted before the hijack, while net/http's Shutdown still
		// waits for this connection: Run then waits for the stream.
		g.jobStreams.Add(1)
		defer g.jobStreams.Done()
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
		sc, ok := hijackSSE(c, g.cfg.WriteTimeout)
		if !ok {
			return
		}
		defer g.streams.hold(c.Request, sc.conn)() // a revoked token ends it
		js := &jobStream{g: g, nc: nc, ref: ref, sc: sc, gone: make(chan struct{}),
			// The original's narration colours its function names with
			// ANSI escapes; only a client that asks (?ansi=1) gets them.
			ansi: c.Query("ansi") == "1" || c.Query("ansi") == "true"}
		go js.watchHangUp()
		defer js.close()
		if sc.write(sc.head(c.Writer.Header(), "")) != nil {
			return
		}
		more, ok := true, true
		for _, ev := range replay.Events {
			if more, ok = js.emit(ev); !more || !ok {
				break
			}
		}
		if more && ok {
			ok = js.follow(live)
		}
		if ok {
			_ = sc.write(lastChunkOf(sc))
		}
	}
}

// jobStream is one client of a job's narration.
type jobStream struct {
	g    *Gateway
	nc   *bus.Conn
	ref  wire.JobRef
	sc   sseConn
	ansi bool
	last int           // Seq of the last event sent
	gone chan struct{} // closed when the client hangs up
}

// follow sends live events (and what the replay has that they lost)
// until the end marker; it reports whether the stream ended cleanly.
func (js *jobStream) follow(live <-chan wire.JobEvent) bool {
	ka := time.NewTimer(js.g.cfg.KeepAlive)
	defer ka.Stop()
	for {
		more, ok := true, true
		select {
		case <-js.gone:
			return false
		case <-js.g.stopping:
			// The hive is going down and cancels every job after the
			// gateway has stopped: send what the job said last, and
			// unless it ended, its cancellation.
			if more, ok = js.catchUp(0); more && ok {
				ok = js.send(wire.EndCancelled) == nil
			}
			return ok
		case ev := <-live:
			if ev.Seq > js.last+1 {
				more, ok = js.catchUp(ev.Seq)
			}
			if more && ok {
				more, ok = js.emit(ev)
			}
		case <-ka.C:
			if ok = js.sc.write(js.sc.bytes(keepAliveFrame)) == nil; ok {
				more, ok = js.catchUp(0)
			}
		}
		if !ok {
			return false
		}
		if !more {
			return true
		}
		ka.Reset(js.g.cfg.KeepAlive)
	}
}

// emit sends ev unless already sent; more is false after the end marker,
// ok false when the client is gone.
func (js *jobStream) emit(ev wire.JobEvent) (more, ok bool) {
	if ev.Seq <= js.last {
		return true, true
	}
	js.last = ev.Seq
	if ev.End != "" {
		return false, js.send(ev.End) == nil
	}
	return true, js.send(ev.Text) == nil
}

// catchUp sends what the replay has beyond last (and below upTo, if set).
// Live events can be lost when a job outruns a slow client (the
// subscription's channel is bounded); the replay keeps them, and always
// keeps the end marker.
func (js *jobStream) catchUp(upTo int) (more, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	rp, err := bus.Request[wire.JobRef, wire.JobReplay](ctx, js.nc, wire.SubjectJobsReplay, js.ref)
	if err != nil {
		return true, true // the next keep-alive tries again
	}
	for _, ev := range rp.Events {
		if upTo > 0 && ev.Seq >= upTo {
			break
		}
		if more, ok := js.emit(ev); !more || !ok {
			return more, ok
		}
	}
	return true, true
}

func (js *jobStream) send(text string) error {
	if !js.ansi {
		text = stripANSI(text)
	}
	return js.sc.write(js.sc.bytes(newFrame(0, jobFrame(text))))
}

// watchHangUp closes gone when the client hangs up (or close cuts it);
// anything it sends is discarded.
func (js *jobStream) watchHangUp() {
	defer close(js.gone)
	var buf [128]byte
	for {
		if _, err := js.sc.conn.Read(buf[:]); err != nil {
			return
		}
	}
}

// close ends the connection and waits for the reader.
func (js *jobStream) close() {
	_ = js.sc.conn.Close()
	<-js.gone
}

// lastChunkOf is how a stream on sc ends cleanly: the last chunk on
// HTTP/1.1; on HTTP/1.0 the closing connection says it.
func lastChunkOf(sc sseConn) []byte {
	if sc.chunked {
		return lastChunk
	}
	return nil
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
