// Package ratelog writes log lines at a bounded rate: a burst, then a
// steady number per second. Lines past the rate are counted, not written,
// and the count goes out with the next line that passes
// (suppressed_before). Whatever a peer can make a server log once per
// attempt (a forbidden publish, a failed TLS handshake) goes through one,
// so a flood of attempts cannot flood the journal and push out the
// hive's own lines.
package ratelog

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limiter is a token bucket in front of a logger. It is safe for
// concurrent use.
type Limiter struct {
	log          *slog.Logger
	burst, rate  float64
	now          func() time.Time
	lines, drops atomic.Uint64

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed uint64
}

// New lets burst lines through at once, then rate lines per second.
func New(log *slog.Logger, burst, rate float64) *Limiter {
	return &Limiter{log: log, burst: burst, rate: rate, now: time.Now, tokens: burst}
}

// Allow takes a token: false means the line is dropped (and counted).
// sup is how many were dropped since the last line that passed.
func (l *Limiter) Allow() (ok bool, sup uint64) {
	l.lines.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		l.drops.Add(1)
		return false, 0
	}
	l.tokens--
	sup, l.suppressed = l.suppressed, 0
	return true, sup
}

// Log writes msg at level with args if the rate allows.
func (l *Limiter) Log(level slog.Level, msg string, args ...any) {
	ok, sup := l.Allow()
	if !ok {
		return
	}
	if sup > 0 {
		args = append(args, "suppressed_before", sup)
	}
	l.log.Log(context.Background(), level, msg, args...)
}

// Lines is how many lines were offered, Dropped how many were not
// written.
func (l *Limiter) Lines() uint64   { return l.lines.Load() }
func (l *Limiter) Dropped() uint64 { return l.drops.Load() }

// Writer is an io.Writer for log.New (net/http's Server.ErrorLog): each
// write is one line, logged at level through l.
func (l *Limiter) Writer(level slog.Level) *Writer { return &Writer{l: l, level: level} }

// Writer adapts a Limiter to the standard library's log.Logger.
type Writer struct {
	l     *Limiter
	level slog.Level
}

func (w *Writer) Write(b []byte) (int, error) {
	w.l.Log(w.level, strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
