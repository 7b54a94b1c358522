package bus

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rbee/hive/internal/metric"
)

// RegisterMetrics exports the bus's own series with reg: observers on the
// edge server, the hub link, and what the bus dropped or could not decode.
func (b *Bus) RegisterMetrics(reg prometheus.Registerer) error {
	return metric.Register(reg,
		metric.Gauge("hive_nats_observers", "External NATS clients connected.", func() float64 {
			if b.edge == nil {
				return 0
			}
			return float64(max(b.edge.ns.NumClients()-1, 0)) // less the bridge
		}),
		metric.Gauge("hive_hub_connected", "1 while the leafnode to the hub is up.", func() float64 {
			if b.HubConnected() {
				return 1
			}
			return 0
		}),
		metric.Gauge("hive_hub_configured", "1 when a hub is configured (--nats-hub), so hive_hub_connected 0 means it is down.", func() float64 {
			if b.edge != nil && b.edge.hasHub {
				return 1
			}
			return 0
		}),
		metric.Counter("hive_nats_bridge_dropped_total", "Exported messages dropped because external NATS clients were too slow.", b.BridgeDropped),
		metric.Counter("hive_nats_bridge_publish_errors_total", "Exported messages the edge server refused (over its payload limit, or while closing).", func() uint64 {
			if b.edge == nil {
				return 0
			}
			return b.edge.publishErrors.Load()
		}),
		metric.Counter("hive_hub_events_trimmed_total", "Telemetry events whose copy for the hub's history was cut to 64 KiB (workers with the highest PIDs left out).", b.HubTrimmed),
		metric.Counter("hive_bus_messages_undecodable_total", "Bus messages no module could decode (counted, then ignored or answered with an error).", b.Undecodable),
	)
}
