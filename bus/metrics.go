package bus

import (
	"time"

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
		metric.Gauge("hive_hub_backlog_messages", "Telemetry events kept for the hub's history and not yet acknowledged by it.", func() float64 {
			return float64(b.outbox().backlog())
		}),
		metric.Gauge("hive_hub_backlog_oldest_seconds", "Age of the oldest event the hub has not acknowledged yet; 0 with none waiting.", func() float64 {
			return b.outbox().oldestAge(time.Now())
		}),
		metric.Counter("hive_hub_forwarded_total", "Telemetry events the hub's history acknowledged.", func() uint64 {
			return b.outbox().forwardedN()
		}),
		hubDropped{b},
		metric.Counter("hive_bus_messages_undecodable_total", "Bus messages no module could decode (counted, then ignored or answered with an error).", b.Undecodable),
	)
}

var hubDroppedDesc = prometheus.NewDesc("hive_hub_dropped_total",
	"Telemetry events the hub's history never got: reason age or bytes (the store's bound, while the hub was away), store (the store could not keep it: disk full), hub_refused (the hub's stream refused it).",
	[]string{"reason"}, nil)

// hubDropped exports hive_hub_dropped_total, one series per reason, all
// present from the start (0 until something is dropped).
type hubDropped struct{ b *Bus }

func (h hubDropped) Describe(ch chan<- *prometheus.Desc) { ch <- hubDroppedDesc }

func (h hubDropped) Collect(ch chan<- prometheus.Metric) {
	o := h.b.outbox()
	for _, r := range dropReasons {
		ch <- prometheus.MustNewConstMetric(hubDroppedDesc, prometheus.CounterValue, float64(o.droppedN(r)), r)
	}
}
