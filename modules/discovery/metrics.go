package discovery

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rbee/hive/internal/metric"
)

// Values of hive_queen_state.
const (
	queenNone      = 0 // standalone: no Queen configured
	queenReaching  = 1 // discovering it, or its last push failed
	queenConnected = 2 // it answered the last discovery or push
)

// register exports the counters discovery keeps as it goes.
func (d *Discovery) register(reg prometheus.Registerer) error {
	return metric.Register(reg,
		metric.Counter("hive_discovery_push_failures_total", "Requests to the Queen that failed: discovery attempts and telemetry pushes.", d.pushFails.Load),
		metric.Counter("hive_discovery_queen_changes_refused_total", "Queen URLs refused: host not allowed, caller not authorised, or too many changes.", d.refused.Load),
		metric.Counter("hive_discovery_queen_urls_dropped_total", "Queen URLs dropped because the queue of changes was full.", d.droppedQ.Load),
		metric.Gauge("hive_queen_state", "Where this hive stands with its Queen: 0 none configured (standalone), 1 reaching it (discovering, or the last push failed), 2 connected (it answered the last discovery or push).",
			func() float64 { return float64(d.queenState.Load()) }),
		metric.Counter("hive_discovery_events_replaced_total", "Telemetry events superseded by a newer one before they were pushed.", d.replaced.Load),
	)
}
