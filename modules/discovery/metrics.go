package discovery

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rbee/hive/internal/metric"
)

// register exports the counters discovery keeps as it goes.
func (d *Discovery) register(reg prometheus.Registerer) error {
	return metric.Register(reg,
		metric.Counter("hive_discovery_push_failures_total", "Telemetry pushes to the Queen that failed.", d.pushFails.Load),
		metric.Counter("hive_discovery_queen_changes_refused_total", "Queen URLs refused: host not allowed, caller not authorised, or too many changes.", d.refused.Load),
		metric.Counter("hive_discovery_queen_urls_dropped_total", "Queen URLs dropped because the queue of changes was full.", d.droppedQ.Load),
		metric.Counter("hive_discovery_events_replaced_total", "Telemetry events superseded by a newer one before they were pushed.", d.replaced.Load),
	)
}
