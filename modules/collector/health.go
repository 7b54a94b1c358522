package collector

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/gpu"
	"github.com/rbee/hive/internal/text"
)

// The health rules, in one place; docs/GPUS.md's "GPU health" table says the
// same. A GPU's health is the worst rule that holds for it; the hive's is
// the worst of its GPUs' and its own, with that rule's reason.
// An XID's health and action are NVIDIA's catalogue's (internal/xid):
// the application's fault and informational codes are counted only; a
// code whose action is a reset, a reboot or an inspection holds until the
// GPU is reset or the machine rebooted (sticky.go); the others degrade
// the GPU for xidHold.
const (
	// xidHold is how long a degrading XID keeps its GPU degraded.
	xidHold = 10 * time.Minute
	// slowdownWindow and slowdownShare: a GPU held in a hardware or
	// thermal slowdown for more than this share of the window is
	// degraded, until the slowdown stops.
	slowdownWindow = time.Minute
	slowdownShare  = 0.5
)

// slowdownReasons are the clock-event reasons that mean the GPU cannot
// run at speed (power caps and idle clocks are normal operation).
var slowdownReasons = []string{"hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown", "sw_thermal_slowdown"}

// ErrGPUWedged marks a GPU source call that did not return in time: the
// tick went on without fresh GPU figures.
var ErrGPUWedged = gpu.ErrWedged

// verdict is one rule's finding, and the action that ends it.
type verdict struct {
	status string
	reason string
	action string
}

func (v verdict) health() wire.HealthStatus {
	if v.status == wire.HealthHealthy {
		return wire.Healthy
	}
	return wire.HealthStatus{Status: v.status, Reason: text.Truncate(v.reason, 512), Action: cmp.Or(v.action, wire.ActionNone)}
}

// actionRank orders the actions from the least to the most drastic: the
// worst verdicts' most drastic action is the one to take.
var actionRank = map[string]int{"": 0, wire.ActionNone: 0, wire.ActionRestartApp: 1, wire.ActionResetGPU: 2, wire.ActionReboot: 3,
	wire.ActionHardwareInspection: 4}

// worst keeps the worst of the verdicts; reasons of the same severity
// are joined.
func worst(vs []verdict) verdict {
	out := verdict{status: wire.HealthHealthy}
	var reasons []string
	for _, v := range vs {
		h, o := wire.HealthStatus{Status: v.status}, wire.HealthStatus{Status: out.status}
		switch {
		case h.Worse(o):
			out.status, out.action, reasons = v.status, v.action, []string{v.reason}
		case v.status == out.status && v.status != wire.HealthHealthy:
			reasons = append(reasons, v.reason)
			if actionRank[v.action] > actionRank[out.action] {
				out.action = v.action
			}
		}
	}
	out.reason = strings.Join(reasons, "; ")
	return out
}

// healthTracker keeps what the rules need across ticks. It is used by the
// tick's goroutine alone.
type healthTracker struct {
	gpus     map[string]*gpuState // by UUID
	readable bool                 // GPUs were read at least once
	// onSticky, where set, records a sticky XID (sticky.go) and returns
	// its action, escalated where the same XID came back after reboots.
	onSticky func(uuid string, code uint64, action string) string
}

// gpuState is one GPU's history.
type gpuState struct {
	index int
	name  string // "GPU 0 (GPU-4d8d...)"
	// sticky is an XID that holds until a reset or a reboot, with its
	// action (escalated after reboots: sticky.go); 0 without one.
	sticky       uint64
	stickyAction string
	// xid is the last degrading XID, until xidUntil.
	xid       uint64
	xidAction string
	xidUntil  time.Time
	slow      []slowSample // samples of the last slowdownWindow
	links     []linkSample // link counters of the last linkWindow
	seen      bool         // listed by a reading once: its absence means something
	listed    bool         // listed by the last snapshot
}

type slowSample struct {
	at      time.Time
	reasons []string // the slowdown reasons active then
}

func newHealthTracker() *healthTracker { return &healthTracker{gpus: map[string]*gpuState{}} }

// gpuName is "GPU 0 (GPU-4d8d...)", or "GPU (PCI:0000:05:00)" for a GPU
// known only by its UUID or bus.
func gpuName(index int, uuid string) string {
	if index < 0 {
		return fmt.Sprintf("GPU (%s)", uuid)
	}
	return fmt.Sprintf("GPU %d (%s)", index, uuid)
}

// observe applies one tick: the GPU snapshot or the source's error, and
// the process walk's error. It returns the hive's health and each listed
// GPU's, by UUID.
func (t *healthTracker) observe(now time.Time, snap GPUSnapshot, gpuErr, procErr error) (wire.HealthStatus, map[string]wire.HealthStatus) {
	for _, x := range snap.XIDs {
		t.noteXID(now, x.Index, x.UUID, x.Code)
	}
	var all []verdict
	perGPU := make(map[string]wire.HealthStatus, len(snap.Devices))
	if gpuErr == nil {
		for _, st := range t.gpus {
			st.listed = false
		}
		for _, d := range snap.Devices {
			st := t.state(d.Index, d.UUID)
			st.listed, st.seen = true, true
			v := st.judge(now, d)
			perGPU[d.UUID] = v.health()
			all = append(all, v)
		}
		if len(snap.Devices) > 0 {
			t.readable = true
		}
	}
	all = append(all, t.judgeSource(gpuErr)...)
	if procErr != nil {
		all = append(all, verdict{status: wire.HealthDegraded, reason: "process collection failed (workers may be missing): " + procErr.Error()})
	}
	return worst(all).health(), perGPU
}

// withChecks adds the hive's other conditions (Config.Checks), each a
// degradation with its reason, to h.
func withChecks(h wire.HealthStatus, checks []func() string) wire.HealthStatus {
	vs := []verdict{{status: h.Status, reason: h.Reason, action: h.Action}}
	for _, check := range checks {
		if r := check(); r != "" {
			vs = append(vs, verdict{status: wire.HealthDegraded, reason: r})
		}
	}
	if len(vs) == 1 {
		return h
	}
	return worst(vs).health()
}

// judgeSource is the rules about the GPU source itself: GPUs that could
// be read and no longer can, or a wedged call.
func (t *healthTracker) judgeSource(gpuErr error) []verdict {
	var out []verdict
	switch {
	case errors.Is(gpuErr, ErrGPUWedged):
		out = append(out, verdict{status: wire.HealthDegraded, reason: "GPU figures are stale: " + gpuErr.Error()})
	case gpuErr != nil && t.readable:
		out = append(out, verdict{status: wire.HealthDegraded, reason: "GPUs could be read and no longer can: " + gpuErr.Error()})
	}
	for _, st := range t.gpus {
		// A reset-class XID holds whatever the driver lists now, or
		// whether it answers at all: a GPU that fell off the bus often
		// takes the driver's listing with it.
		switch {
		case st.sticky != 0 && (gpuErr != nil || !st.listed):
			out = append(out, verdict{status: wire.HealthUnhealthy, reason: st.stickyReason() + ", then gone", action: st.stickyAction})
		case gpuErr == nil && !st.listed && st.seen:
			out = append(out, verdict{status: wire.HealthDegraded, reason: st.name + " is no longer listed by the driver"})
		}
	}
	return out
}

// state is the GPU's history; a GPU first known by its UUID alone (index
// -1: restored from the store, or named by its bus) takes its index when
// a reading lists it.
func (t *healthTracker) state(index int, uuid string) *gpuState {
	st := t.gpus[uuid]
	if st == nil {
		st = &gpuState{index: index, name: gpuName(index, uuid)}
		t.gpus[uuid] = st
	}
	if st.index != index && index >= 0 {
		st.index, st.name = index, gpuName(index, uuid)
	}
	return st
}

// judge is the rules about one GPU as the snapshot shows it.
func (st *gpuState) judge(now time.Time, d GPUDevice) verdict {
	var vs []verdict
	if d.Lost {
		vs = append(vs, verdict{status: wire.HealthUnhealthy, reason: st.name + " is lost (fell off the bus?): reset or reboot needed", action: wire.ActionReboot})
	}
	if st.sticky != 0 {
		vs = append(vs, verdict{status: wire.HealthUnhealthy, reason: st.stickyReason(), action: st.stickyAction})
	}
	if d.Has&HasECC != 0 && d.ECCUncorrected > 0 {
		vs = append(vs, verdict{status: wire.HealthDegraded, reason: fmt.Sprintf("%s: %d uncorrectable ECC errors: reboot needed", st.name, d.ECCUncorrected), action: wire.ActionReboot})
	}
	if d.Has&HasRemap != 0 && d.RemapPending {
		vs = append(vs, verdict{status: wire.HealthDegraded, reason: st.name + ": row remap pending: reboot needed", action: wire.ActionReboot})
	}
	if d.Has&HasRemap != 0 && d.RemapFailed {
		vs = append(vs, verdict{status: wire.HealthDegraded, reason: st.name + ": a row remap failed: the GPU needs service", action: wire.ActionHardwareInspection})
	}
	if st.xid != 0 && now.Before(st.xidUntil) {
		vs = append(vs, verdict{status: wire.HealthDegraded, reason: fmt.Sprintf("%s: %s in the last %v", st.name, xidName(st.xid), xidHold), action: st.xidAction})
	}
	if d.Has&HasThrottle != 0 {
		if v, ok := st.slowdown(now, d.Throttle); ok {
			vs = append(vs, v)
		}
	}
	vs = append(vs, st.linkErrors(now, d)...)
	return worst(vs)
}

// slowdown records this sample and reports a slowdown that held for most
// of the window and holds now.
func (st *gpuState) slowdown(now time.Time, throttle []string) (verdict, bool) {
	var active []string
	for _, r := range throttle {
		if slices.Contains(slowdownReasons, r) {
			active = append(active, r)
		}
	}
	cut := now.Add(-slowdownWindow)
	keep := st.slow[:0]
	for _, s := range st.slow {
		if s.at.After(cut) {
			keep = append(keep, s)
		}
	}
	st.slow = append(keep, slowSample{at: now, reasons: active})
	if len(active) == 0 {
		return verdict{}, false
	}
	// Each sample stands for the time until the next one.
	var slowed time.Duration
	for i := 0; i+1 < len(st.slow); i++ {
		if len(st.slow[i].reasons) > 0 {
			slowed += st.slow[i+1].at.Sub(st.slow[i].at)
		}
	}
	if slowed < time.Duration(slowdownShare*float64(slowdownWindow)) {
		return verdict{}, false
	}
	// The reason stays the same while the slowdown lasts: a reason that
	// named the seconds changed every tick, and each change was counted
	// and logged as a new health.
	return verdict{status: wire.HealthDegraded, reason: fmt.Sprintf("%s: %s for over %d%% of the last %v",
		st.name, strings.Join(active, ","), int(slowdownShare*100), slowdownWindow)}, true
}

// noteHealth logs and counts a change of the hive's health, and of each
// GPU's, once per change.
func (c *Collector) noteHealth(h wire.HealthStatus, gpus []wire.NodeGPU) {
	if h != c.lastHealth {
		c.metrics.healthChanges.WithLabelValues(h.Status).Inc()
		if h.Status == wire.HealthHealthy {
			c.log.Info("hive health: healthy", "was", c.lastHealth.Status)
		} else {
			c.log.Warn("hive health: "+h.Status, "reason", h.Reason, "was", c.lastHealth.Status)
		}
		c.lastHealth = h
	}
	if c.lastGPU == nil {
		c.lastGPU = map[string]string{}
	}
	for _, g := range gpus {
		if prev, ok := c.lastGPU[g.UUID]; ok && prev != g.Health.Status {
			c.log.Warn("GPU health changed", "gpu", g.Index, "uuid", g.UUID, "status", g.Health.Status, "reason", g.Health.Reason, "was", prev)
		}
		c.lastGPU[g.UUID] = g.Health.Status
	}
}
