package bus

import "github.com/prometheus/client_golang/prometheus"

// RegisterMetrics exports the bus's own series with reg: observers on the
// edge server, the hub link, and what the bus dropped or could not decode.
func (b *Bus) RegisterMetrics(reg prometheus.Registerer) error {
	gauge := func(name, help string, v func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, v)
	}
	counter := func(name, help string, v func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v()) })
	}
	for _, c := range []prometheus.Collector{
		gauge("hive_nats_observers", "External NATS clients connected.", func() float64 {
			if b.edge == nil {
				return 0
			}
			return float64(max(b.edge.ns.NumClients()-1, 0)) // less the bridge
		}),
		gauge("hive_hub_connected", "1 while the leafnode to the hub is up.", func() float64 {
			if b.HubConnected() {
				return 1
			}
			return 0
		}),
		counter("hive_nats_bridge_dropped_total", "Exported messages dropped because external NATS clients were too slow.", b.BridgeDropped),
		counter("hive_bus_messages_undecodable_total", "Bus messages no module could decode (counted, then ignored or answered with an error).", b.Undecodable),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
