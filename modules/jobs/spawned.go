package jobs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// spawned is a worker process this hive started.
type spawned struct {
	pid        int
	startTicks uint64 // with pid, the process's identity across restarts
	port       int
	workerID   string
	model      string
	binary     string
	logPath    string
	cgroup     string // its cgroup directory, "" when not placed
	exe        string // what it runs once healthy (stateEntry.Exe); guarded by procManager.mu
	// adopted is a worker an earlier run of the hive spawned: not this
	// process's child, so it is seen gone in /proc, not reaped.
	adopted bool
	// status is how it ended (statusErr when it could not be read), set
	// before exited is closed.
	status    syscall.WaitStatus
	statusErr error
	exited    chan struct{} // closed once reaped
}

// procManager owns the workers this hive spawned and reaps them. Reaping
// polls wait4(WNOHANG) instead of blocking in cmd.Wait, so no goroutine is
// stuck on a worker that outlives the hive (workers keep running unless
// asked to stop).
type procManager struct {
	log *slog.Logger
	// statePath is the state file ("" keeps nothing); stateErrors counts
	// writes that failed.
	statePath   string
	stateErrors atomic.Uint64
	mu          sync.Mutex
	procs       map[int]*spawned
	// added wakes reapLoop's sweep, which sleeps while there is nothing
	// to reap.
	added chan struct{}
	// lock holds the state directory (openState); adoptable says whether
	// a worker of the state file may be taken back.
	lock      *os.File
	stateErr  error // the state dir is not usable: no spawn (openState)
	adoptable func(stateEntry) error
	// helpers are the log writers started beside workers, this process's
	// children to reap when they end.
	helpers map[int]struct{}
}

func newProcManager(log *slog.Logger, statePath string) *procManager {
	return &procManager{log: log, statePath: statePath, procs: make(map[int]*spawned), added: make(chan struct{}, 1),
		adoptable: func(stateEntry) error { return nil }, helpers: map[int]struct{}{}}
}

// add takes w on; it fails when the state file could not record it (a
// restarted hive would not know w: the caller stops it).
func (p *procManager) add(w *spawned) error {
	p.mu.Lock()
	p.procs[w.pid] = w
	err := p.saveLocked()
	p.mu.Unlock()
	p.wake()
	return err
}

// healthy records what w runs now that it serves, for a later hive to
// know it by (adoptable).
func (p *procManager) healthy(w *spawned) {
	exe := exeOf(w.pid)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.procs[w.pid]; ok && exe != "" && exe != w.exe {
		w.exe = exe
		_ = p.saveLocked()
	}
}

func (p *procManager) wake() {
	select {
	case p.added <- struct{}{}:
	default:
	}
}

func (p *procManager) get(pid int) (*spawned, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.procs[pid]
	return w, ok
}

func (p *procManager) all() []*spawned {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*spawned, 0, len(p.procs))
	for _, w := range p.procs {
		out = append(out, w)
	}
	return out
}

func (p *procManager) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.procs)
}

func (p *procManager) ports() map[int]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[int]bool, len(p.procs))
	for _, w := range p.procs {
		out[w.port] = true
	}
	return out
}

// helper takes on a helper process (a log writer) to reap.
func (p *procManager) helper(pid int) {
	p.mu.Lock()
	p.helpers[pid] = struct{}{}
	p.mu.Unlock()
}

// reap collects every exited child and returns the workers among them.
func (p *procManager) reap() []*spawned {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pid := range p.helpers {
		if got, err := syscall.Wait4(pid, nil, syscall.WNOHANG, nil); got == pid || errors.Is(err, syscall.ECHILD) {
			delete(p.helpers, pid)
		}
	}
	var gone []*spawned
	for pid, w := range p.procs {
		if w.adopted {
			if t, alive := startTicks(pid); !alive || t != w.startTicks {
				delete(p.procs, pid)
				close(w.exited)
				gone = append(gone, w)
				p.log.Info("worker exited", "pid", pid, "worker_id", w.workerID, "status", "unknown (spawned before the hive restarted)")
			}
			continue
		}
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if got == pid || errors.Is(err, syscall.ECHILD) {
			delete(p.procs, pid)
			w.status = ws
			w.statusErr = err
			close(w.exited)
			gone = append(gone, w)
			p.log.Info("worker exited", "pid", pid, "worker_id", w.workerID, "status", exitText(ws, err))
		}
	}
	if len(gone) > 0 {
		_ = p.saveLocked()
	}
	return gone
}

// reapLoop reaps until ctx ends, calling onExit for each exited worker.
// A child's exit is a SIGCHLD, so an idle hive sleeps here: no timer wakes
// it 20 times a second. The slow sweep covers what sends no SIGCHLD to
// this process (workers adopted from an earlier run, whose parent is now
// init) and a signal that coalesced with another. SIGCHLD is not a
// lifecycle signal (cmd owns those): being told of it changes nothing in
// how children are reaped, here or by os/exec.
func (p *procManager) reapLoop(ctx context.Context, onExit func(*spawned)) {
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	defer signal.Stop(chld)
	// The sweep runs only while there are workers: an idle hive that
	// spawned nothing is not woken every reapSweep.
	sweep := time.NewTimer(reapSweep)
	defer sweep.Stop()
	sweeping := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-chld:
		case <-p.added:
		case <-sweep.C:
			sweeping = false
		}
		for _, w := range p.reap() {
			onExit(w)
		}
		if !sweeping && p.count() > 0 {
			sweep.Reset(reapSweep)
			sweeping = true
		}
	}
}

// reapSweep is how often reapLoop looks without being told, while there
// are workers: how late an adopted worker's exit (no SIGCHLD: not our
// child) may be seen.
const reapSweep = 2 * time.Second

// stop ends w and everything it started: its process group, its cgroup
// and its descendants get SIGTERM; once the main process is gone and
// nothing of it is left the stop is done, else after grace whatever is
// left gets SIGKILL. A child that ignores SIGTERM no longer outlives the
// main process. It returns the pids still alive after the SIGKILL (none,
// unless one left the group, the cgroup and the tree).
func (p *procManager) stop(w *spawned, grace time.Duration) []int {
	tree := func() []procID { return treeOf(procID{w.pid, w.startTicks}, true, w.cgroup) }
	signalTree(w.cgroup, tree(), syscall.SIGTERM)
	if p.waitGone(w, tree, grace) {
		return nil
	}
	left := tree()
	p.log.Info("worker still running after SIGTERM; sending SIGKILL", "pid", w.pid, "processes", len(left), "grace", grace.String())
	signalTree(w.cgroup, left, syscall.SIGKILL)
	p.waitGone(w, tree, 5*time.Second)
	gone := pids(tree())
	if len(gone) > 0 {
		p.log.Warn("worker processes survived SIGKILL", "pid", w.pid, "left", gone)
	}
	return gone
}

// waitGone reaps until w exited and tree lists nothing, or d passed.
func (p *procManager) waitGone(w *spawned, tree func() []procID, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		p.reap()
		select {
		case <-w.exited:
			if len(tree()) == 0 {
				return true
			}
		default:
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopAll stops every spawned worker and returns them.
func (p *procManager) stopAll(grace time.Duration) []*spawned {
	p.mu.Lock()
	all := make([]*spawned, 0, len(p.procs))
	for _, w := range p.procs {
		all = append(all, w)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range all {
		wg.Go(func() { p.stop(w, grace) })
	}
	wg.Wait()
	return all
}

func exitText(ws syscall.WaitStatus, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case ws.Signaled():
		return "signal: " + ws.Signal().String()
	default:
		return "exit status " + itoa(ws.ExitStatus())
	}
}
