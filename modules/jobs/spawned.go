package jobs

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// spawned is a worker process this hive started.
type spawned struct {
	pid      int
	port     int
	workerID string
	model    string
	logPath  string
	exited   chan struct{} // closed once reaped
}

// procManager owns the workers this hive spawned and reaps them. Reaping
// polls wait4(WNOHANG) instead of blocking in cmd.Wait, so no goroutine is
// stuck on a worker that outlives the hive (workers keep running unless
// asked to stop).
type procManager struct {
	log   *slog.Logger
	mu    sync.Mutex
	procs map[int]*spawned
}

func newProcManager(log *slog.Logger) *procManager {
	return &procManager{log: log, procs: make(map[int]*spawned)}
}

func (p *procManager) add(w *spawned) {
	p.mu.Lock()
	p.procs[w.pid] = w
	p.mu.Unlock()
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

// reap collects every exited child and returns them.
func (p *procManager) reap() []*spawned {
	p.mu.Lock()
	defer p.mu.Unlock()
	var gone []*spawned
	for pid, w := range p.procs {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if got == pid || errors.Is(err, syscall.ECHILD) {
			delete(p.procs, pid)
			close(w.exited)
			gone = append(gone, w)
			p.log.Info("worker exited", "pid", pid, "worker_id", w.workerID, "status", exitText(ws, err))
		}
	}
	return gone
}

// reapLoop reaps until ctx ends, calling onExit for each exited worker.
func (p *procManager) reapLoop(ctx context.Context, onExit func(*spawned)) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, w := range p.reap() {
				onExit(w)
			}
		}
	}
}

// stop ends w's process group: SIGTERM, then SIGKILL after grace. It
// returns once the worker is reaped (or could not be).
func (p *procManager) stop(w *spawned, grace time.Duration) {
	_ = syscall.Kill(-w.pid, syscall.SIGTERM)
	if p.waitExit(w, grace) {
		return
	}
	_ = syscall.Kill(-w.pid, syscall.SIGKILL)
	p.waitExit(w, 5*time.Second)
}

// waitExit reaps until w exited or d passed.
func (p *procManager) waitExit(w *spawned, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		p.reap()
		select {
		case <-w.exited:
			return true
		default:
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
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
