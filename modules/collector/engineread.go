package collector

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/engine"
)

// EngineConfig configures the reading of workers' engines: their own load
// from http://127.0.0.1:<port>/metrics (docs/PROTOCOL.md, "Engine load").
type EngineConfig struct {
	// Interval is how often each engine is read; 0 turns reading off.
	Interval time.Duration
	// Timeout bounds one read; MaxBytes one page (a longer one is cut at
	// it, counted, and what it held is used).
	Timeout  time.Duration
	MaxBytes int64
	// StallAfter: a worker whose engine has requests running and has not
	// moved for this long is "stalled".
	StallAfter time.Duration
	// Push: a change of a worker's queue or running count by this much is
	// published at once on hive.load.
	Push engine.Delta
}

// MinEngineInterval is the shortest engine read interval accepted.
const MinEngineInterval = 100 * time.Millisecond

// DefaultEngineConfig reads each engine once a second.
func DefaultEngineConfig() EngineConfig {
	return EngineConfig{Interval: time.Second, Timeout: 300 * time.Millisecond, MaxBytes: 2 << 20,
		StallAfter: 30 * time.Second, Push: engine.Delta{Requests: 4, Ratio: 0.25}}
}

// engineTarget is what the prober keeps of one worker's engine.
type engineTarget struct {
	port    int
	tracker engine.Tracker
	slots   bool      // /metrics is off: llama.cpp's /slots answers instead
	fails   int       // reads failed in a row
	next    time.Time // not read before (after failures)
	read    bool      // read in the round now ending
}

// engineBackoff is how long an engine that failed n reads in a row is
// left alone: a worker that has no metrics page (not an engine the table
// knows) is asked less and less, up to every 30 s.
func engineBackoff(n int) time.Duration {
	if n < 3 {
		return 0
	}
	return min(time.Duration(1<<min(n-3, 5))*time.Second, 30*time.Second)
}

// Reasons of hive_engine_scrape_errors_total.
const (
	scrapeTimeout  = "timeout"
	scrapeRefused  = "refused"
	scrapeStatus   = "status"    // not 2xx (a redirect is not followed)
	scrapeNoEngine = "no_engine" // an answer with no family the table knows
	scrapeError    = "error"
)

var pagePool = sync.Pool{New: func() any { return new(pageBuf) }}

type pageBuf struct {
	b []byte
	p *engine.Parser
	r engine.Reading
}

// readEngines reads every due engine once, at most maxProbes at a time,
// then pushes the workers whose queue or running count moved.
func (p *prober) readEngines(ctx context.Context) {
	now := p.now()
	p.mu.Lock()
	due := make(map[int32]int, len(p.engines))
	for pid, t := range p.engines {
		t.read = false
		if !now.Before(t.next) {
			due[pid] = t.port
		}
	}
	p.mu.Unlock()
	if len(due) == 0 {
		return
	}
	known := p.readListeners()
	sem := make(chan struct{}, maxProbes)
	var wg sync.WaitGroup
	for pid, port := range due {
		if known && !p.listening.has(port) {
			continue // loading its model: nothing to read yet, nothing wrong
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			p.readEngine(ctx, pid, port)
		})
	}
	wg.Wait()
	p.pushMoved()
}

// readEngine reads one engine's page (or llama.cpp's slots) and updates
// its tracker.
func (p *prober) readEngine(ctx context.Context, pid int32, port int) {
	p.mu.Lock()
	t := p.engines[pid]
	slots := t != nil && t.slots
	p.mu.Unlock()
	if t == nil {
		return
	}
	buf := pagePool.Get().(*pageBuf)
	defer pagePool.Put(buf)
	if buf.p == nil {
		buf.p = engine.NewParser()
	}
	path := "/metrics"
	if slots {
		path = "/slots"
	}
	at, status, err := p.fetch(ctx, port, path, buf, slots)
	if err == nil && !slots && (status == http.StatusNotFound || status == http.StatusNotImplemented) {
		// llama.cpp without --metrics answers 501: its slots tell what
		// runs.
		if at2, status2, err2 := p.fetch(ctx, port, "/slots", buf, true); err2 == nil && status2 == http.StatusOK {
			at, status, slots = at2, status2, true
		}
	}
	var reason string
	switch {
	case err != nil:
		reason = fetchReason(err)
	case status < 200 || status > 299:
		reason = scrapeStatus
	case slots:
		if engine.ParseSlots(buf.b, &buf.r) != nil {
			reason = scrapeNoEngine
		}
	default:
		if buf.p.Parse(buf.b, &buf.r) != nil {
			reason = scrapeNoEngine
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.engines[pid] != t || t.port != port {
		return // gone, or another process, since the round began
	}
	t.read = true
	if reason != "" {
		p.engineErrors.WithLabelValues(reason).Inc()
		t.fails++
		t.next = p.now().Add(engineBackoff(t.fails))
		if t.fails > 3 {
			t.slots = false // ask /metrics again, in case the engine changed
		}
		return
	}
	t.fails, t.next, t.slots = 0, time.Time{}, slots
	t.tracker.Update(&buf.r, at, p.engine.StallAfter)
}

// fetch GETs path of the worker's port into buf.b, at most MaxBytes of
// it: a longer page is cut at its last whole line and counted. at is the
// middle of the request, when the engine rendered its figures.
func (p *prober) fetch(ctx context.Context, port int, path string, buf *pageBuf, json bool) (at time.Time, status int, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.engine.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+path, nil)
	if err != nil {
		return at, 0, err
	}
	if json {
		req.Header.Set("Accept", "application/json")
	} else {
		req.Header.Set("Accept", "text/plain;version=0.0.4")
	}
	sent := time.Now()
	resp, err := p.engineClient.Do(req)
	if err != nil {
		return at, 0, err
	}
	defer resp.Body.Close()
	at = p.now().Add(-time.Since(sent) / 2)
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return at, resp.StatusCode, nil
	}
	b, err := readLimited(resp.Body, buf.b[:0], p.engine.MaxBytes)
	buf.b = b
	if errors.Is(err, errCut) {
		p.enginePagesCut.Inc()
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 && !json {
			buf.b = b[:i+1]
		}
		err = nil
		if json {
			err = errCut // a cut JSON answer is no answer
		}
	}
	return at, resp.StatusCode, err
}

var errCut = errors.New("page over the size bound")

// readLimited appends r to buf up to max bytes; errCut when there was
// more.
func readLimited(r io.Reader, buf []byte, max int64) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		room := buf[len(buf):min(cap(buf), int(max)+1)]
		n, err := r.Read(room)
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > max {
			return buf[:max], errCut
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func fetchReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return scrapeTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return scrapeRefused
	case errors.Is(err, errCut):
		return scrapeNoEngine
	case errors.Is(err, os.ErrDeadlineExceeded):
		return scrapeTimeout
	}
	return scrapeError
}

// pushMoved publishes, in one hive.load event, the workers read this
// round whose queue or running count moved by the push delta.
func (p *prober) pushMoved() {
	if p.push == nil {
		return
	}
	now := p.now()
	var moved []wire.WorkerLoadOf
	p.mu.Lock()
	for pid, t := range p.engines {
		if t.read && t.tracker.Moved(p.engine.Push) {
			moved = append(moved, wire.WorkerLoadOf{PID: uint32(pid), Load: t.tracker.Load(now)})
		}
	}
	p.mu.Unlock()
	if len(moved) > 0 {
		p.push(moved)
	}
}

// engineLoad is the worker's load block for the tick, nil when its
// engine has not answered lately, and whether it is stalled.
func (p *prober) engineLoad(pid int32, now time.Time) (*wire.WorkerLoad, bool) {
	t := p.engines[pid]
	if t == nil || !t.tracker.Fresh(now, max(3*p.engine.Interval, 3*time.Second)) {
		return nil, false
	}
	l := t.tracker.Load(now)
	return &l, t.tracker.Stalled()
}
