package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/bustest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// modules stands in for the modules that answer stats: real handlers on
// the real bus, with fixed counters.
func modules(t *testing.T, b *bus.Bus, answer bool) {
	t.Helper()
	nc, err := b.Connect("stand-ins")
	if err != nil {
		t.Fatal(err)
	}
	if !answer {
		return
	}
	handle := func(subject string, v any) {
		if _, err := bus.Handle(nc, subject, func(struct{}) (any, error) { return v, nil }); err != nil {
			t.Fatal(err)
		}
	}
	handle(bus.StatsSubject("collector"), bus.CollectorStats{
		TickSeconds:  bus.Histogram{Bounds: []float64{0.01, 0.1}, Counts: []uint64{3, 5}, Count: 5, Sum: 0.2},
		SampleErrors: 2, Published: 5,
	})
	handle(bus.StatsSubject("gateway"), bus.GatewayStats{Subscribers: 7, Published: 5, Dropped: 1, Kicked: 1, Stalls: 3})
	handle(bus.StatsSubject("jobs"), bus.JobsStats{Running: 1, Totals: map[string]map[string]uint64{"worker_spawn": {"done": 3, "error": 1}}})
	handle(bus.StatsSubject("discovery"), bus.DiscoveryStats{PushFailures: 4})
	_ = nc.Flush()
}

func scrape(t *testing.T, nc *bus.Conn) string {
	t.Helper()
	out, err := bus.Request[struct{}, bus.MetricsScrape](context.Background(), nc, bus.SubjectMetricsScrape, struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.ContentType, "text/plain; version=0.0.4") {
		t.Fatalf("content type %q", out.ContentType)
	}
	return out.Body
}

func TestWorkerAndHiveSeries(t *testing.T) {
	b := bustest.Start(t)
	modules(t, b, true)
	m, err := New(Config{HiveID: "h1", Version: "1.2.3", Commit: "abc"}, b, bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	bustest.RunModule(t, "metrics", m.Run, m.Ready())
	pub, _ := b.Connect("collector")
	w := bus.WorkerCounter{PID: 42, Group: "llm", Instance: "9001", Model: "tinyllama", CPUSecondsTotal: 12.5,
		ResidentBytes: 1 << 20, IOReadBytesTotal: 100, IOWriteBytesTotal: 200, StartTimeSeconds: 1.7e9, GPUUtilRatio: 0.5, GPUMemoryBytes: 2 << 30}
	_ = pub.PublishJSON(bus.SubjectWorkerCounters, bus.WorkerCounters{HiveID: "other", Workers: []bus.WorkerCounter{{PID: 99}}})
	_ = pub.PublishJSON(bus.SubjectWorkerCounters, bus.WorkerCounters{HiveID: "h1", Workers: []bus.WorkerCounter{w}})
	labels := `{group="llm",hive_id="h1",instance="9001",model="tinyllama",pid="42"}`
	var body string
	bustest.WaitFor(t, 5*time.Second, func() error {
		body = scrape(t, pub)
		if !strings.Contains(body, "hive_worker_cpu_seconds_total"+labels+" 12.5") {
			return errors.New("no worker series yet")
		}
		return nil
	})
	for _, want := range []string{
		"hive_worker_resident_memory_bytes" + labels + " 1.048576e+06",
		"hive_worker_io_read_bytes_total" + labels + " 100",
		"hive_worker_io_write_bytes_total" + labels + " 200",
		"hive_worker_gpu_utilization_ratio" + labels + " 0.5",
		"hive_worker_gpu_memory_bytes" + labels + " 2.147483648e+09",
		"hive_worker_start_time_seconds" + labels + " 1.7e+09",
		`hive_build_info{commit="abc",hive_id="h1",version="1.2.3"} 1`,
		`hive_sse_subscribers{hive_id="h1"} 7`,
		`hive_telemetry_events_published_total{hive_id="h1"} 5`,
		`hive_sse_events_dropped_total{hive_id="h1"} 1`,
		`hive_sse_subscribers_kicked_total{hive_id="h1"} 1`,
		`hive_sse_write_stalls_total{hive_id="h1"} 3`,
		`hive_collector_tick_duration_seconds_bucket{hive_id="h1",le="0.01"} 3`,
		`hive_collector_tick_duration_seconds_count{hive_id="h1"} 5`,
		`hive_collector_sample_errors_total{hive_id="h1"} 2`,
		`hive_nats_observers{hive_id="h1"} 0`,
		`hive_hub_connected{hive_id="h1"} 0`,
		`hive_jobs_running{hive_id="h1"} 1`,
		`hive_jobs_total{hive_id="h1",operation="worker_spawn",result="done"} 3`,
		`hive_discovery_push_failures_total{hive_id="h1"} 4`,
		`hive_metrics_module_unanswered{hive_id="h1",module="jobs"} 0`,
		"go_goroutines ",
		"process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %s", want)
		}
	}
	if strings.Contains(body, `pid="99"`) {
		t.Error("another hive's worker is in this hive's metrics")
	}
	// The worker goes: its series go with the next tick.
	_ = pub.PublishJSON(bus.SubjectWorkerCounters, bus.WorkerCounters{HiveID: "h1", Workers: []bus.WorkerCounter{}})
	bustest.WaitFor(t, 5*time.Second, func() error {
		if strings.Contains(scrape(t, pub), "hive_worker_") {
			return errors.New("the gone worker's series are still there")
		}
		return nil
	})
	problems, err := testutil.CollectAndLint(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// A module that does not answer is left out of the scrape, said so, and
// does not hold the scrape past the stats timeout.
func TestScrapeWithoutModules(t *testing.T) {
	b := bustest.Start(t)
	modules(t, b, false)
	m, err := New(Config{HiveID: "h1", StatsTimeout: 50 * time.Millisecond}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	bustest.RunModule(t, "metrics", m.Run, m.Ready())
	nc, _ := b.Connect("scraper")
	body := scrape(t, nc)
	if !strings.Contains(body, `hive_metrics_module_unanswered{hive_id="h1",module="gateway"} 1`) || strings.Contains(body, "hive_sse_subscribers") {
		t.Fatalf("scrape without modules:\n%s", body)
	}
	if _, err := New(Config{}, b, nil); err == nil {
		t.Error("empty hive id accepted")
	}
}
