package hubcluster

import (
	"maps"
	"sync"
	"time"
)

// Arrivals is what a failover test measures at a subscriber: per hive,
// when its telemetry last arrived and the longest gap between two of its
// messages since the gaps were reset. Safe for concurrent use.
type Arrivals struct {
	mu   sync.Mutex
	last map[string]time.Time
	gap  map[string]time.Duration
}

// NewArrivals returns an empty record.
func NewArrivals() *Arrivals {
	return &Arrivals{last: map[string]time.Time{}, gap: map[string]time.Duration{}}
}

// Note records a message of hive id that arrived at at.
func (a *Arrivals) Note(id string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if prev, ok := a.last[id]; ok && at.Sub(prev) > a.gap[id] {
		a.gap[id] = at.Sub(prev)
	}
	a.last[id] = at
}

// SeenAfter reports whether a message of id arrived after t.
func (a *Arrivals) SeenAfter(id string, t time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last[id].After(t)
}

// ResetGaps forgets the gaps measured so far.
func (a *Arrivals) ResetGaps() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.gap)
}

// Gaps returns the longest gap of each hive since the last reset.
func (a *Arrivals) Gaps() map[string]time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.gap)
}
