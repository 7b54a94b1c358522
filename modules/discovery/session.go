package discovery

import (
	"context"
	"fmt"

	"github.com/rbee/hive/bus"
)

// session is what one Run holds: its connection, the telemetry
// subscription once there is one, and the discovery loop that runs.
type session struct {
	d    *Discovery
	ctx  context.Context
	nc   *bus.Conn
	tsub *bus.Sub
	cur  *loop
}

// readTelemetry subscribes to the hive's telemetry, once. Telemetry is
// read only where it is pushed: the heartbeat API, once a Queen is
// configured or may be (an allow-list). A standalone hive and the ready
// API (the Queen subscribes to the SSE stream) take none: no decode and
// no wake-up per tick. A Queen that comes later (a reload that allows
// one) starts it; its first discovery body then says "starting" until
// the next tick.
func (s *session) readTelemetry() error {
	if s.tsub != nil || s.d.cfg.API == APIReady {
		return nil
	}
	var err error
	if s.tsub, err = bus.SubscribeTelemetry(s.nc, s.d.cfg.Hive.ID, s.d.onTelemetry); err != nil {
		return fmt.Errorf("discovery: subscribe: %w", err)
	}
	return nil
}

// switchTo starts discovery toward Queen URL u, unless it runs already.
func (s *session) switchTo(u string) {
	d := s.d
	if s.cur.running() && s.cur.url == u {
		d.log.Debug("discovery already running for this Queen", "queen", u)
		return
	}
	if s.cur.running() {
		d.log.Info("Queen URL changed; replacing the discovery loop", "old", s.cur.url, "new", u)
	} else {
		d.log.Info("discovering Queen", "queen", u)
	}
	s.start(u)
}

// start replaces the running loop, if any, with one toward url.
func (s *session) start(url string) {
	d := s.d
	if err := s.readTelemetry(); err != nil {
		d.log.Error("telemetry not followed: pushes to the Queen wait for it", "err", err)
	}
	s.stop()
	d.mu.Lock()
	d.current = url
	d.mu.Unlock()
	lctx, cancel := context.WithCancel(s.ctx)
	s.cur = &loop{url: url, cancel: cancel, done: make(chan struct{})}
	d.loops.Add(1)
	go func(l *loop) {
		defer close(l.done)
		d.follow(lctx, l.url)
		d.mu.Lock()
		if d.current == l.url {
			d.current = "" // ended (acknowledged, or gave up): the same URL may start it again
		}
		d.mu.Unlock()
	}(s.cur)
}

// stop ends the running loop and waits for it.
func (s *session) stop() {
	if s.cur != nil {
		s.cur.cancel()
		<-s.cur.done
	}
}

// close stops the loop and the telemetry subscription.
func (s *session) close() {
	s.stop()
	if s.tsub != nil {
		_ = s.tsub.Unsubscribe()
	}
}
