package wire_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rbee/hive/bus/wire"
)

func TestFloatEncoding(t *testing.T) {
	for _, tc := range []struct {
		in   wire.Float
		want string
	}{{0, "0.0"}, {1, "1.0"}, {99.5, "99.5"}, {-2, "-2.0"}, {1e21, "1000000000000000000000.0"}, {0.001, "0.001"}} {
		b, err := json.Marshal(tc.in)
		if err != nil || string(b) != tc.want {
			t.Errorf("Marshal(%v) = %s, %v; want %s", float64(tc.in), b, err, tc.want)
		}
	}
}

func TestTimestamps(t *testing.T) {
	ts := time.Date(2025, 10, 31, 12, 44, 41, 123456789, time.FixedZone("x", 3600))
	if got, want := wire.SSETimestamp(ts), "2025-10-31T11:44:41.123456789+00:00"; got != want {
		t.Errorf("SSETimestamp = %s, want %s", got, want)
	}
	if got, want := wire.PushTimestamp(ts), "2025-10-31T11:44:41.123456789Z"; got != want {
		t.Errorf("PushTimestamp = %s, want %s", got, want)
	}
}

func TestTelemetrySubjectFor(t *testing.T) {
	for id, want := range map[string]string{"gpu-07": "hive.telemetry.gpu-07", "gpu_07.dc1": "hive.telemetry.gpu_07.dc1"} {
		if got, err := wire.TelemetrySubjectFor(id); err != nil || got != want {
			t.Errorf("%q: %q %v", id, got, err)
		}
	}
	for _, bad := range []string{"", "a b", "*", ">", "a.*", "a..b", ".a", "a.", "a>", strings.Repeat("x", 129)} {
		if got, err := wire.TelemetrySubjectFor(bad); err == nil {
			t.Errorf("%q accepted as %q", bad, got)
		}
	}
}

// A Queen URL whose port no socket can have is refused before it spends
// one of the rate-limited Queen changes.
func TestValidateQueenURLPorts(t *testing.T) {
	for s, ok := range map[string]bool{
		"http://q:7833":     true,
		"http://q":          true,
		"https://[::1]:1/":  true,
		"http://q:65535":    true,
		"http://q:0":        false,
		"http://q:65536":    false,
		"http://q:99999999": false,
		"http://q:":         false,
		"http://[::1]:0/x":  false,
		"http://q:7833?x=1": false,
		"http://u:p@q:7833": false,
		"ftp://q:21":        false,
	} {
		if err := wire.ValidateQueenURL(s); (err == nil) != ok {
			t.Errorf("ValidateQueenURL(%q) = %v, want ok=%v", s, err, ok)
		}
	}
}

// An event over its bound keeps the lowest PIDs, as many as fit, and says
// how many it left out; one that fits is unchanged.
func TestFitEvent(t *testing.T) {
	model := strings.Repeat("m", wire.MaxModelBytes)
	ev := wire.TelemetryEvent{Type: "telemetry", HiveID: "h", Workers: []wire.ProcessStats{}, Node: wire.Node{GPUs: []wire.NodeGPU{}}}
	for pid := uint32(5000); pid > 0; pid-- {
		ev.Workers = append(ev.Workers, wire.ProcessStats{PID: pid, Model: &model, GPUIndices: []int{}})
	}
	small, omitted, err := wire.FitEvent(wire.TelemetryEvent{Type: "telemetry", Workers: ev.Workers[:3]}, wire.MaxEventBytes)
	if err != nil || omitted != 0 || strings.Contains(string(small), "workers_omitted") {
		t.Fatalf("small event: %v %s", err, small)
	}
	for _, limit := range []int{wire.MaxEventBytes, wire.MaxHubEventBytes, 2000} {
		b, omitted, err := wire.FitEvent(ev, limit)
		if err != nil || len(b) > limit {
			t.Fatalf("limit %d: %d bytes, %v", limit, len(b), err)
		}
		var got wire.TelemetryEvent
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		n := len(got.Workers)
		if n == 0 || got.WorkersOmitted != 5000-n || omitted != 5000-n {
			t.Fatalf("limit %d: %d workers, %d omitted", limit, n, got.WorkersOmitted)
		}
		for i, w := range got.Workers {
			if w.PID != uint32(i+1) {
				t.Fatalf("limit %d: worker %d has pid %d, want the lowest pids first", limit, i, w.PID)
			}
		}
		// Nearly full: one more worker would not have fitted.
		ev2 := got
		ev2.Workers = append(ev2.Workers, ev.Workers[0])
		if more, _ := json.Marshal(ev2); len(more) <= limit {
			t.Errorf("limit %d: %d workers kept, but %d fit", limit, n, n+1)
		}
	}
}
