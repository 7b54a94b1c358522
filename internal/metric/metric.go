// Package metric holds the small helpers the modules use to export the
// counters they keep as they go: a module registers them with the
// Registerer it was given, and a scrape reads them.
package metric

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Counter exports a counter the caller keeps (an atomic, say) as it is at
// scrape time.
func Counter(name, help string, v func() uint64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v()) })
}

// Gauge exports a value read at scrape time.
func Gauge(name, help string, v func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, v)
}

// Register registers every collector with reg, stopping at the first
// that fails (a name registered twice).
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register: %w", err)
		}
	}
	return nil
}
