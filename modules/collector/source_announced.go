package collector

import (
	"context"
	"sync"

	"github.com/rbee/hive/bus/wire"
	"github.com/shirou/gopsutil/v3/process"
)

// maxAnnounced bounds the announced set; a module announcing more workers
// than this is misbehaving, and the excess is dropped and counted.
const maxAnnounced = 4096

// AnnouncedSource reports workers other modules announced on
// hive.workers.started until hive.workers.stopped or until the process is
// gone.
type AnnouncedSource struct {
	mu      sync.Mutex
	workers map[int32]wire.WorkerEvent
	dropped uint64
}

var _ Source = (*AnnouncedSource)(nil)

// NewAnnouncedSource returns an empty source.
func NewAnnouncedSource() *AnnouncedSource {
	return &AnnouncedSource{workers: make(map[int32]wire.WorkerEvent)}
}

// Name implements Source.
func (s *AnnouncedSource) Name() string { return "announced" }

// Started records a worker. It reports false when the set is full.
func (s *AnnouncedSource) Started(ev wire.WorkerEvent) bool {
	if ev.PID <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.workers[int32(ev.PID)]; !ok && len(s.workers) >= maxAnnounced {
		s.dropped++
		return false
	}
	if ev.Group == "" {
		ev.Group = "llm"
	}
	s.workers[int32(ev.PID)] = ev
	return true
}

// Stopped forgets a worker.
func (s *AnnouncedSource) Stopped(ev wire.WorkerEvent) {
	s.mu.Lock()
	delete(s.workers, int32(ev.PID))
	s.mu.Unlock()
}

// Dropped counts announcements refused because the set was full.
func (s *AnnouncedSource) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Scan implements Source. Entries whose process is gone are forgotten, so
// a stop that was never announced cannot leak.
func (s *AnnouncedSource) Scan(ctx context.Context) ([]Worker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Worker, 0, len(s.workers))
	for pid, ev := range s.workers {
		if ok, _ := process.PidExistsWithContext(ctx, pid); !ok {
			delete(s.workers, pid)
			continue
		}
		instance := ev.Instance
		if instance == "" {
			instance = itoa(pid)
		}
		out = append(out, Worker{PIDs: []int32{pid}, Group: ev.Group, Instance: instance, Model: ev.Model, Port: portOf(ev.Instance)})
	}
	return out, nil
}
