package collector

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/kmsg"
	"github.com/rbee/hive/internal/metric"
)

// loop publishes a tick every Interval, and at once (at most every
// extraGap) when a kernel-log Xid failed a worker or changed a GPU's
// health, until ctx ends; then the last event, marked stopping.
func (c *Collector) loop(ctx context.Context, nc *bus.Conn, xids <-chan kmsg.Event) {
	// time.Ticker keeps its schedule (start + n*interval) however long a
	// tick takes, and drops ticks rather than bunching them up.
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	last := c.tick(ctx, nc, wire.StatusReady, time.Now())
	var extra time.Time           // the last event out of the tick
	var deferred <-chan time.Time // a change that came within extraGap of it
	for {
		select {
		case <-ctx.Done():
			c.publishStopping(nc, last)
			return
		case at := <-t.C:
			last = c.tick(ctx, nc, wire.StatusReady, at)
		case ev := <-xids:
			now := time.Now()
			switch {
			case !c.applyKmsg(now, ev) || deferred != nil:
			case now.Sub(extra) >= extraGap:
				extra = now
				last = c.tick(ctx, nc, wire.StatusReady, now)
			default:
				deferred = time.After(extra.Add(extraGap).Sub(now))
			}
		case at := <-deferred:
			deferred, extra = nil, at
			last = c.tick(ctx, nc, wire.StatusReady, at)
		}
	}
}

// startKmsg restores this boot's sticky Xids and starts reading the
// kernel log (where configured); reading is closed once the reader ended.
func (c *Collector) startKmsg(ctx context.Context) (<-chan kmsg.Event, <-chan struct{}) {
	c.sticky = openSticky(c.cfg.HealthState, c.cfg.BootIDFile, c.log)
	c.health.onSticky = c.sticky.note
	for uuid, g := range c.sticky.active() {
		st := c.health.state(-1, uuid)
		st.sticky, st.stickyAction = g.Active, g.Action
	}
	xids := make(chan kmsg.Event, kmsgQueue)
	reading := make(chan struct{})
	if c.cfg.Kmsg == "" {
		close(reading)
		return xids, reading
	}
	go func() {
		defer close(reading)
		c.followKmsg(ctx, xids)
	}()
	return xids, reading
}

// registerKmsg exports what the kernel log's reader counts.
func (c *Collector) registerKmsg(reg prometheus.Registerer) error {
	return metric.Register(reg,
		metric.Counter("hive_kmsg_lines_total", "Lines of the kernel log read for Xids (workers.kmsg-path).", c.kmsgStats.Lines.Load),
		metric.Counter("hive_kmsg_xids_total", "Xid lines of the kernel log.", c.kmsgStats.Xids.Load),
		metric.Counter("hive_kmsg_lines_cut_total", "Kernel log lines longer than 4 KiB, read up to it.", c.kmsgStats.Cut.Load),
		metric.Counter("hive_kmsg_xids_dropped_total", "Kernel log Xids dropped because 64 were waiting for the tick.", c.kmsgDropped.Load),
	)
}
