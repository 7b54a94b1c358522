package gateway

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rbee/hive/bus/bustest"
)

// GET /metrics serves the registry the gateway registered with, its series
// lint-clean and counting as it goes.
func TestMetricsServeTheRegistry(t *testing.T) {
	g := startGateway(t, Config{})
	s := openStream(t, g.base+"/v1/heartbeats/stream", nil)
	defer s.close()
	g.publish(t, payload(1))
	s.next(t)
	bustest.WaitFor(t, 5*time.Second, func() error {
		resp, err := http.Get(g.base + "/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
			return errors.New("status " + resp.Status + ", type " + resp.Header.Get("Content-Type"))
		}
		if !strings.Contains(string(b), "\nhive_sse_subscribers 1\n") {
			return errors.New("hive_sse_subscribers is not 1:\n" + string(b))
		}
		return nil
	})
	problems, err := testutil.GatherAndLint(g.reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if n, err := testutil.GatherAndCount(g.reg, "hive_sse_events_dropped_total", "hive_http_connections_shed_total", "hive_job_stream_events_dropped_total"); err != nil || n != 3 {
		t.Errorf("counters: %d %v", n, err)
	}
}
