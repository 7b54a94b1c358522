// Package enginetest serves fake inference engines for tests and
// benchmarks: a fixture page of internal/engine/testdata (each engine's
// page as its code prints it) with the figures a test sets, counters that
// grow at a set rate, and the failures a hostile or broken engine shows.
package enginetest

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fixture is the text of a fixture page, or slots answer, by file name.
func Fixture(name string) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "testdata", name))
	return string(b), err
}

var placeholder = regexp.MustCompile(`\$\{([a-z_.0-9]+)\}`)

// Engine is one fake engine: it answers GET /metrics with its page,
// GET /health with 200, and GET /slots with Slots when set.
type Engine struct {
	mu    sync.Mutex
	page  string
	vals  map[string]float64
	rates map[string]float64 // per second, from start
	start time.Time
	// Slots, when set, is served at /slots; MetricsStatus, when set, is
	// the status of /metrics (llama.cpp without --metrics answers 501).
	Slots         string
	MetricsStatus int
	// Handler, when set, answers /metrics instead (garbage, redirects,
	// slow drips).
	Handler http.HandlerFunc
	reads   int
	readAt  []time.Time // the last 256 reads of /metrics
}

// New serves page (a fixture's text).
func New(page string) *Engine {
	return &Engine{page: page, vals: map[string]float64{}, rates: map[string]float64{}, start: time.Now()}
}

// Set sets the figure ${name} (and ${name.N} for every data-parallel
// engine N of the page, unless set on its own).
func (e *Engine) Set(name string, v float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.vals[name] = v
	delete(e.rates, name)
}

// FirstReadAfter is when /metrics was first read after t.
func (e *Engine) FirstReadAfter(t time.Time) (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, at := range e.readAt {
		if at.After(t) {
			return at, true
		}
	}
	return time.Time{}, false
}

// Grow makes counter ${name} grow at perSecond from now on, from its
// current value.
func (e *Engine) Grow(name string, perSecond float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	e.vals[name] = e.valueLocked(name, now)
	e.rates[name] = perSecond
	e.start = now
	for n := range e.rates { // every growing counter restarts from now
		if n != name {
			e.vals[n] = e.valueLocked(n, now)
		}
	}
}

func (e *Engine) valueLocked(name string, now time.Time) float64 {
	v := e.vals[name]
	if r, ok := e.rates[name]; ok {
		v += r * now.Sub(e.start).Seconds()
	}
	return v
}

// Reads is how many times /metrics was read.
func (e *Engine) Reads() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.reads
}

// Render is the page as of now.
func (e *Engine) Render() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	return []byte(placeholder.ReplaceAllStringFunc(e.page, func(m string) string {
		name := m[2 : len(m)-1]
		if _, ok := e.vals[name]; !ok {
			if base, _, found := strings.Cut(name, "."); found {
				if _, ok := e.vals[base]; ok {
					name = base
				}
			}
		}
		return PyFloat(e.valueLocked(name, now))
	}))
}

// ServeHTTP implements http.Handler.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/health":
		w.WriteHeader(http.StatusOK)
	case "/metrics":
		e.mu.Lock()
		e.reads++
		if len(e.readAt) == 256 {
			e.readAt = append(e.readAt[:0], e.readAt[1:]...)
		}
		e.readAt = append(e.readAt, time.Now())
		h, status := e.Handler, e.MetricsStatus
		e.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		if status != 0 {
			http.Error(w, `{"error":{"code":501,"message":"This server does not support metrics endpoint.","type":"not_supported_error"}}`, status)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(e.Render())
	case "/slots":
		if e.Slots == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(e.Slots))
	default:
		http.NotFound(w, r)
	}
}

// PyFloat formats v as Python's prometheus_client does
// (floatToGoString): repr, with Go's exponent from 1e7.
func PyFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if math.Abs(v) >= 1e16 {
		s = strconv.FormatFloat(v, 'e', -1, 64)
	} else if !strings.Contains(s, ".") {
		s += ".0"
	}
	if dot := strings.IndexByte(s, '.'); v > 0 && dot > 6 && !strings.Contains(s, "e") {
		mantissa := strings.TrimRight(s[:1]+"."+s[1:dot]+s[dot+1:], "0.")
		if !strings.Contains(mantissa, ".") {
			mantissa += ".0"
		}
		return fmt.Sprintf("%se+0%d", mantissa, dot-1)
	}
	return s
}

// Big is a page of n bytes of valid, unknown families: a hostile worker's
// 50 MB answer.
func Big(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "junk_family_%d{a=\"%d\"} %d\n", i%10000, i, i)
	}
	return b.Bytes()[:n]
}
