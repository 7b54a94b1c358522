package collector

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
)

// followAnnouncements subscribes to the jobs module's worker
// announcements (started, stopped with how they ended), and takes the
// workers already announced before it subscribed. It returns the
// subscriptions made, even on error.
func (c *Collector) followAnnouncements(ctx context.Context, nc *bus.Conn) ([]*bus.Sub, error) {
	subs := make([]*bus.Sub, 0, 2)
	for subj, fn := range map[string]func(wire.WorkerEvent){
		wire.SubjectWorkersStarted: c.onStarted,
		wire.SubjectWorkersStopped: c.onStopped,
	} {
		s, err := bus.Subscribe(nc, subj, fn)
		if err != nil {
			return subs, fmt.Errorf("collector: subscribe %s: %w", subj, err)
		}
		subs = append(subs, s)
	}
	// Announcements published before the first tick must be seen by it.
	if err := nc.Flush(); err != nil {
		return subs, fmt.Errorf("collector: flush: %w", err)
	}
	// And those published before this subscription: the workers the jobs
	// module took back from an earlier run of the hive, at its start. No
	// answer (no jobs module) means none.
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if wl, err := bus.Request[struct{}, wire.WorkerList](lctx, nc, wire.SubjectWorkersList, struct{}{}); err == nil {
		for _, ev := range wl.Workers {
			c.announced.Started(ev)
		}
	}
	return subs, nil
}

func (c *Collector) onStarted(ev wire.WorkerEvent) {
	if !c.announced.Started(ev) {
		c.log.Warn("worker announcement dropped", "pid", ev.PID, "dropped_total", c.announced.Dropped())
	}
}

// onStopped forgets the worker and keeps its exit, if it says how it
// ended, for the next tick's one "exited" entry (at most maxAnnounced).
func (c *Collector) onStopped(ev wire.WorkerEvent) {
	c.announced.Stopped(ev)
	if ev.Exit == nil {
		return
	}
	c.exitsMu.Lock()
	if len(c.exits) < maxAnnounced {
		c.exits = append(c.exits, ev)
	}
	c.exitsMu.Unlock()
}

// withExits appends, once, each announced exit of a worker the last event
// listed and this one does not: state "exited", how it ended, no load.
func (c *Collector) withExits(ws []wire.ProcessStats) []wire.ProcessStats {
	c.exitsMu.Lock()
	exits := c.exits
	c.exits = nil
	c.exitsMu.Unlock()
	now := make(map[uint32]bool, len(ws))
	for _, w := range ws {
		now[w.PID] = true
	}
	for _, ev := range exits {
		w, ok := c.last[uint32(ev.PID)]
		if !ok || now[w.PID] {
			continue // not in the last event, or a second announcement
		}
		now[w.PID] = true
		gone := wire.ProcessStats{PID: w.PID, Group: w.Group, Instance: w.Instance, UptimeS: w.UptimeS, TotalVRAMMB: w.TotalVRAMMB,
			Model: w.Model, GPUIndices: []int{}, State: wire.WorkerExited, Exit: ev.Exit}
		ws = append(ws, gone)
		c.metrics.stateChanges.WithLabelValues(wire.WorkerExited).Inc()
		c.log.Info("worker state", "pid", w.PID, "instance", w.Instance, "from", w.State, "to", wire.WorkerExited, "exit", exitString(ev.Exit))
	}
	if c.last == nil {
		c.last = make(map[uint32]wire.ProcessStats, len(ws))
	}
	clear(c.last) // reused: a steady host allocates no map per tick
	for _, w := range ws {
		if w.State != wire.WorkerExited {
			c.last[w.PID] = w
		}
	}
	return ws
}

func exitString(e *wire.WorkerExit) string {
	if e.Signal != "" {
		return e.Signal
	}
	if e.Code != nil {
		return "code " + strconv.Itoa(*e.Code)
	}
	return "unknown"
}
