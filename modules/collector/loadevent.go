package collector

import (
	"encoding/json"
	"time"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
)

// maxLoadWorkers bounds one hive.load event: a burst on more workers than
// this at once waits for the next telemetry event (counted).
const maxLoadWorkers = 1024

// publishLoad publishes the workers whose load moved between two ticks
// on hive.load, for routers that cannot wait for the next tick.
func (c *Collector) publishLoad(nc *bus.Conn, ws []wire.WorkerLoadOf) {
	if len(ws) > maxLoadWorkers {
		ws = ws[:maxLoadWorkers]
	}
	ev := wire.LoadEvent{HiveID: c.cfg.Hive.ID, Timestamp: wire.SSETimestamp(time.Now()), Workers: ws}
	data, err := json.Marshal(ev)
	if err != nil {
		c.log.Error("encode load event", "err", err)
		return
	}
	if err := nc.Publish(wire.SubjectLoad, data); err != nil {
		c.metrics.publishErrors.Inc()
		return
	}
	c.metrics.loadEvents.Inc()
}
