package collector

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/kmsg"
	"github.com/rbee/hive/internal/text"
	"github.com/rbee/hive/internal/xid"
)

const (
	// kmsgQueue bounds the kernel log's Xids waiting for the tick's
	// goroutine; more are dropped and counted.
	kmsgQueue = 64
	// xidSame: the same Xid of the same GPU from the other source within
	// this is the same event (NVML's and the kernel's), counted once.
	xidSame = 5 * time.Second
	// xidRepeat: the same kernel-log Xid (GPU, code, process) again within
	// this is the driver repeating itself, not queued twice.
	xidRepeat = time.Second
	// extraGap: events out of the tick (a worker failed, a GPU's health
	// changed) at most this often; a change within it goes with the next.
	extraGap = 100 * time.Millisecond
)

// gpuRef is a GPU as the last reading listed it.
type gpuRef struct {
	index int
	uuid  string
}

// followKmsg reads the kernel log's Xids into out until ctx ends. Without
// the right to read it (CAP_SYSLOG, or dmesg_restrict) it says so once and
// the hive goes on with NVML's events, which name no process.
//
// A line the driver repeats (the same Xid, GPU and process within
// xidRepeat) is not queued again: a GPU spamming one Xid leaves room in
// the queue for the others.
func (c *Collector) followKmsg(ctx context.Context, out chan<- kmsg.Event) {
	recent := map[kmsg.Event]time.Time{}
	err := kmsg.Follow(ctx, c.cfg.Kmsg, 20*time.Millisecond, &c.kmsgStats, func(ev kmsg.Event) {
		key := ev
		key.Name = "" // the name makes no other event
		now := time.Now()
		if at, ok := recent[key]; ok && now.Sub(at) < xidRepeat {
			return
		}
		if len(recent) >= 1024 {
			clear(recent)
		}
		recent[key] = now
		select {
		case out <- ev:
		default:
			c.kmsgDropped.Add(1)
		}
	})
	if err != nil && ctx.Err() == nil {
		c.log.Info("kernel log not read: Xids name no process and no bus id (NVML's events only)", "path", c.cfg.Kmsg, "err", err)
	}
}

// applyKmsg applies one Xid of the kernel log and reports whether a
// worker's state or a GPU's health changed. An application Xid whose pid
// is a worker's marks that worker failed and leaves the GPU healthy.
func (c *Collector) applyKmsg(now time.Time, ev kmsg.Event) bool {
	g := c.gpuOfBus(ev.PCI)
	if c.firstXID(now, g.uuid, ev.Code) {
		c.countXID(g.index, ev.Code)
	}
	changed := false
	if e, _ := xid.Lookup(ev.Code); e.Application() && ev.PID > 0 {
		if w, ok := c.ownerOf(int32(ev.PID)); ok && c.failed[w] != ev.Code {
			c.failed[w] = ev.Code
			c.metrics.stateChanges.WithLabelValues(wire.WorkerFailed).Inc()
			c.log.Warn("worker state", "pid", w, "to", wire.WorkerFailed, "xid", ev.Code, "process", ev.PID,
				"name", text.Printable(text.Truncate(ev.Name, 64)), "gpu", g.index)
			changed = true
		}
	}
	return c.health.noteXID(now, g.index, g.uuid, ev.Code) || changed
}

// gpuOfBus is the GPU on bus pci ("0000:05:00"): the listed GPU with that
// bus id; the only GPU where the source names no bus ids; else a GPU of
// its own, named by its bus, which the driver does not list.
func (c *Collector) gpuOfBus(pci string) gpuRef {
	if g, ok := c.buses[pci]; ok {
		return g
	}
	if len(c.buses) == 0 && len(c.lastGPUs) == 1 {
		return gpuRef{c.lastGPUs[0].Index, c.lastGPUs[0].UUID}
	}
	return gpuRef{-1, "PCI:" + pci}
}

// noteBuses keeps the bus id of each GPU of a good reading.
func (c *Collector) noteBuses(devs []GPUDevice) {
	clear(c.buses)
	for _, d := range devs {
		if pci := kmsg.NormalizePCI(d.BusID); pci != "" {
			c.buses[pci] = gpuRef{d.Index, d.UUID}
		}
	}
}

// firstXID reports whether the Xid of that GPU was not seen within xidSame
// (by either source), and remembers it.
func (c *Collector) firstXID(now time.Time, uuid string, code uint64) bool {
	key := uuid + "/" + strconv.FormatUint(code, 10)
	if at, ok := c.seenXID[key]; ok && now.Sub(at) < xidSame {
		return false
	}
	if len(c.seenXID) >= 1024 { // a storm of distinct ones: forget the old
		clear(c.seenXID)
	}
	c.seenXID[key] = now
	return true
}

// markFailed sets the state of each worker the driver blamed for an
// application Xid, for as long as it runs, and forgets those gone.
func (c *Collector) markFailed(ws []wire.ProcessStats) {
	if len(c.failed) == 0 {
		return
	}
	alive := make(map[uint32]bool, len(ws))
	for i := range ws {
		w := &ws[i]
		alive[w.PID] = true
		if code, ok := c.failed[w.PID]; ok {
			w.State, w.Exit = wire.WorkerFailed, &wire.WorkerExit{XID: code}
		}
	}
	for pid := range c.failed {
		if !alive[pid] {
			delete(c.failed, pid)
		}
	}
}

// ownerOf is the main pid of the last tick's worker that pid belongs to.
// It is asked only for an Xid, so the tick keeps no index of processes.
func (c *Collector) ownerOf(pid int32) (uint32, bool) {
	for _, w := range c.sampled {
		if slices.Contains(w.PIDs, pid) {
			return uint32(w.PIDs[0]), true
		}
	}
	return 0, false
}

// noteXIDs counts NVML's Xids of a reading (once with the kernel log's)
// and keeps the GPUs' bus ids.
func (c *Collector) noteXIDs(now time.Time, g gpuTick) {
	if g.err != nil {
		return
	}
	c.noteBuses(g.snap.Devices)
	for _, x := range g.snap.XIDs {
		if c.firstXID(now, x.UUID, x.Code) {
			c.countXID(x.Index, x.Code)
		}
	}
}

// countXID counts an Xid by GPU and code; a code the catalogue does not
// list is counted as "other", so a hostile log cannot make a series of
// every number it writes.
func (c *Collector) countXID(index int, code uint64) {
	label := "other"
	if _, ok := xid.Lookup(code); ok {
		label = strconv.FormatUint(code, 10)
	}
	c.metrics.xids.WithLabelValues(strconv.Itoa(index), label).Inc()
}
