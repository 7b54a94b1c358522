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
