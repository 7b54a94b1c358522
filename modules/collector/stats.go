package collector

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rbee/hive/bus"
)

// tickBounds are the tick-duration histogram's upper bounds, in seconds:
// from a few workers (~1 ms) to a tick that overran a 1 s interval.
var tickBounds = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// collectorStats are the collector's own counters, answered on
// hive.stats.collector. The tick goroutine writes; the bus reads.
type collectorStats struct {
	sampleErrors atomic.Uint64 // a worker source or the GPU query failed
	published    atomic.Uint64

	mu     sync.Mutex
	counts []uint64 // per bound, not cumulative
	count  uint64
	sum    float64
}

func (s *collectorStats) observeTick(d time.Duration) {
	v := d.Seconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts == nil {
		s.counts = make([]uint64, len(tickBounds))
	}
	for i, b := range tickBounds {
		if v <= b {
			s.counts[i]++
			break
		}
	}
	s.count++
	s.sum += v
}

func (s *collectorStats) snapshot() bus.CollectorStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := bus.Histogram{Bounds: tickBounds, Counts: make([]uint64, len(tickBounds)), Count: s.count, Sum: s.sum}
	var cum uint64
	for i := range tickBounds {
		if s.counts != nil {
			cum += s.counts[i]
		}
		h.Counts[i] = cum
	}
	return bus.CollectorStats{TickSeconds: h, SampleErrors: s.sampleErrors.Load(), Published: s.published.Load()}
}
