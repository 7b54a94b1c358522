package engine

import (
	"math"
	"time"

	"github.com/rbee/hive/bus/wire"
)

// Tracker turns one worker's successive readings into its load: rates
// from counter deltas between two reads, how old the figures are, and
// whether the engine has stopped making progress.
type Tracker struct {
	last   Reading
	lastAt time.Time
	have   bool

	promptTPS, genTPS float64
	hasPrompt, hasGen bool

	// progressAt is the read at which the engine last moved, or was
	// idle: a stall is counted from there.
	progressAt time.Time
	stalled    bool

	pushedQueue, pushedRunning float64
	pushed                     bool
}

// Update takes a reading made at at (the middle of the request: the
// engine computed its page between send and answer).
func (t *Tracker) Update(r *Reading, at time.Time, stallAfter time.Duration) {
	if t.have && t.last.Engine != r.Engine {
		*t = Tracker{} // another engine on that port: start again
	}
	if t.have {
		if dt := at.Sub(t.lastAt).Seconds(); dt > 0 {
			t.promptTPS, t.hasPrompt = rate(&t.last, r, PromptTokens, dt)
			t.genTPS, t.hasGen = rate(&t.last, r, GenTokens, dt)
		}
	}
	running, hasRunning := r.Get(Running)
	switch {
	case !hasRunning || running == 0 || !r.HasProgress:
		t.progressAt = at // idle (or queued only), or nothing to judge by
	case !t.have || !t.last.HasProgress || r.Progress != t.last.Progress:
		t.progressAt = at
	}
	t.stalled = hasRunning && running > 0 && r.HasProgress && at.Sub(t.progressAt) >= stallAfter
	t.last, t.lastAt, t.have = *r, at, true
}

// rate is a counter's increase per second between two readings; a
// counter that went back was reset (the engine restarted), and what it
// counts now is its increase since.
func rate(prev, cur *Reading, f Field, dt float64) (float64, bool) {
	p, ok1 := prev.Get(f)
	c, ok2 := cur.Get(f)
	if !ok1 || !ok2 {
		return 0, false
	}
	d := c - p
	if d < 0 {
		d = c
	}
	return d / dt, true
}

// Stalled reports whether the engine had requests running and did not
// move for stallAfter, as of the last read.
func (t *Tracker) Stalled() bool { return t.have && t.stalled }

// Fresh reports whether the last read is younger than staleAfter: an
// engine that stopped answering has no load block.
func (t *Tracker) Fresh(now time.Time, staleAfter time.Duration) bool {
	return t.have && now.Sub(t.lastAt) < staleAfter
}

// Load is the worker's load block as of now.
func (t *Tracker) Load(now time.Time) wire.WorkerLoad {
	r := &t.last
	l := wire.WorkerLoad{Engine: r.Engine, AgeMS: uint64(max(now.Sub(t.lastAt), 0).Milliseconds())}
	l.Queue = count(r, Queue)
	l.Running = count(r, Running)
	l.KVUsedTokens = count(r, KVUsedTokens)
	l.KVCapacityTokens = count(r, KVCapacity)
	l.Preemptions = count(r, Preemptions)
	if v, ok := r.Get(KVUsedRatio); ok {
		l.KVUsedRatio = ptr(wire.Round(min(v, 1), 4))
	} else if used, total := l.KVUsedTokens, l.KVCapacityTokens; used != nil && total != nil && *total > 0 {
		l.KVUsedRatio = ptr(wire.Round(min(float64(*used)/float64(*total), 1), 4))
	}
	if t.hasPrompt {
		l.PromptTPS = ptr(wire.Round(t.promptTPS, 1))
	}
	if t.hasGen {
		l.GenTPS = ptr(wire.Round(t.genTPS, 1))
	}
	return l
}

func count(r *Reading, f Field) *uint64 {
	v, ok := r.Get(f)
	if !ok || v > math.MaxInt64 {
		return nil
	}
	n := uint64(math.Round(v))
	return &n
}

func ptr[T any](v T) *T { return &v }

// Delta is when a change of queue or running is pushed at once: by at
// least Requests, or by at least Ratio of what was last pushed. Zero
// values turn that rule off.
type Delta struct {
	Requests float64
	Ratio    float64
}

// Moved reports whether the queue or the running count moved by d since
// the last push, and takes the current figures as pushed when it did.
func (t *Tracker) Moved(d Delta) bool {
	if !t.have || d == (Delta{}) {
		return false
	}
	q, _ := t.last.Get(Queue)
	r, _ := t.last.Get(Running)
	if !t.pushed {
		t.pushedQueue, t.pushedRunning, t.pushed = q, r, true
		return false // the first reading goes with the next telemetry event
	}
	if !moved(t.pushedQueue, q, d) && !moved(t.pushedRunning, r, d) {
		return false
	}
	t.pushedQueue, t.pushedRunning = q, r
	return true
}

func moved(was, now float64, d Delta) bool {
	diff := math.Abs(now - was)
	if diff == 0 {
		return false
	}
	return d.Requests > 0 && diff >= d.Requests || d.Ratio > 0 && diff >= d.Ratio*max(was, 1)
}
