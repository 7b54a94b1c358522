package discovery

import (
	"encoding/json"

	"github.com/rbee/hive/bus/wire"
)

// event is a telemetry event split into the parts a push copies as they
// came from the collector: the workers are never decoded and encoded
// again, once a second, only to be moved.
type event struct {
	HiveInfo  json.RawMessage `json:"hive_info"`
	Timestamp string          `json:"timestamp"`
	Workers   json.RawMessage `json:"workers"`
	Node      json.RawMessage `json:"node"`
}

// pushBody is wire.HiveHeartbeat with its parts spliced in: the same keys
// in the same order, so the Queen reads the same JSON.
type pushBody struct {
	Hive         json.RawMessage `json:"hive"`
	Timestamp    string          `json:"timestamp"`
	Workers      json.RawMessage `json:"workers"`
	Node         json.RawMessage `json:"node,omitempty"` // additive, as in the event
	Capabilities []wire.Device   `json:"capabilities,omitempty"`
}

// startingEvent is what discovery sends before the first tick: the static
// hive_info, status "starting", no workers.
func startingEvent(info wire.HiveInfo) event {
	info.OperationalStatus = wire.StatusStarting
	info.HealthStatus = wire.Healthy
	b, _ := json.Marshal(info)
	return event{HiveInfo: b, Workers: json.RawMessage("[]")}
}

// MarshalJSON writes the parts as they are: they came compact from the
// collector (or from json.Marshal), so copying them is enough.
func (p pushBody) MarshalJSON() ([]byte, error) {
	ts, err := json.Marshal(p.Timestamp)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(p.Hive)+len(p.Workers)+len(ts)+64)
	b = append(b, `{"hive":`...)
	b = append(b, p.Hive...)
	b = append(b, `,"timestamp":`...)
	b = append(b, ts...)
	b = append(b, `,"workers":`...)
	b = append(b, p.Workers...)
	if len(p.Node) > 0 {
		b = append(b, `,"node":`...)
		b = append(b, p.Node...)
	}
	if len(p.Capabilities) > 0 {
		caps, err := json.Marshal(p.Capabilities)
		if err != nil {
			return nil, err
		}
		b = append(b, `,"capabilities":`...)
		b = append(b, caps...)
	}
	return append(b, '}'), nil
}
