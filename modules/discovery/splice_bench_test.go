package discovery

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/rbee/hive/bus/wire"
)

func telemetryOf(n int) []byte {
	ev := wire.TelemetryEvent{Type: "telemetry", HiveID: "h1", Timestamp: "2026-01-02T03:04:05.5+00:00",
		HiveInfo: wire.HiveInfo{ID: "h1", Hostname: "10.1.1.1", Port: 7835, OperationalStatus: wire.StatusReady, HealthStatus: wire.Healthy, Version: "t"}}
	for i := range n {
		m := fmt.Sprintf("model-%d", i)
		ev.Workers = append(ev.Workers, wire.ProcessStats{PID: uint32(1000 + i), Group: "llm", Instance: fmt.Sprint(9000 + i), CPUPct: 12.5, RSSMB: 100, Model: &m})
	}
	b, _ := json.Marshal(ev)
	return b
}

// BenchmarkPushBody compares the push body of one event of 100 workers
// built by decoding and encoding the whole event (before) with the splice
// of its raw parts (now).
func BenchmarkPushBody(b *testing.B) {
	data := telemetryOf(100)
	b.Run("decode-encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ev wire.TelemetryEvent
			_ = json.Unmarshal(data, &ev)
			_, _ = json.Marshal(wire.HiveHeartbeat{Hive: ev.HiveInfo, Timestamp: ev.Timestamp, Workers: ev.Workers})
		}
	})
	b.Run("splice", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var ev event
			_ = json.Unmarshal(data, &ev)
			_, _ = pushBody{Hive: ev.HiveInfo, Timestamp: ev.Timestamp, Workers: ev.Workers}.MarshalJSON()
		}
	})
}

// The spliced body is byte for byte the body the decode-encode built.
func TestPushBodySplicesTheSameJSON(t *testing.T) {
	data := telemetryOf(3)
	var full wire.TelemetryEvent
	_ = json.Unmarshal(data, &full)
	want, _ := json.Marshal(wire.HiveHeartbeat{Hive: full.HiveInfo, Timestamp: "x", Workers: full.Workers})
	var ev event
	_ = json.Unmarshal(data, &ev)
	got, _ := pushBody{Hive: ev.HiveInfo, Timestamp: "x", Workers: ev.Workers}.MarshalJSON()
	if string(got) != string(want) {
		t.Fatalf("spliced %s\nwant    %s", got, want)
	}
}
