package discovery

import "github.com/prometheus/client_golang/prometheus"

// register exports the counters discovery keeps as it goes.
func (d *Discovery) register(reg prometheus.Registerer) error {
	counter := func(name, help string, v func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v()) })
	}
	for _, c := range []prometheus.Collector{
		counter("hive_discovery_push_failures_total", "Telemetry pushes to the Queen that failed.", d.pushFails.Load),
		counter("hive_discovery_queen_changes_refused_total", "Queen URLs refused: host not allowed, caller not authorised, or too many changes.", d.refused.Load),
		counter("hive_discovery_queen_urls_dropped_total", "Queen URLs dropped because the queue of changes was full.", d.droppedQ.Load),
		counter("hive_discovery_events_replaced_total", "Telemetry events superseded by a newer one before they were pushed.", d.replaced.Load),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
