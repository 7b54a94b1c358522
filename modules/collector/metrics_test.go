package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
)

// collectSamples is collect without the counters.
func (c *Collector) collectSamples(ctx context.Context) []wire.ProcessStats {
	ws, _, _ := c.collect(ctx)
	return ws
}

// gathered renders the collector's registry as the text exposition.
func (h *collectorHarness) gathered(t *testing.T) string {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var lv []string
			for _, l := range m.GetLabel() {
				lv = append(lv, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			fmt.Fprintf(&b, "%s{%s} %v\n", mf.GetName(), strings.Join(lv, ","), v)
		}
	}
	return b.String()
}

// The collector registers its own series, lint-clean: the tick histogram,
// the published counter, and one set per worker of the latest tick, gone
// with the worker.
func TestCollectorMetrics(t *testing.T) {
	h := startCollector(t, Config{})
	p := spawn(t, "sh", "-c", "while :; do :; done")
	pid := p.Process.Pid
	b, _ := json.Marshal(wire.WorkerEvent{PID: pid, Group: "llm", Instance: "9402", Model: "phi-3"})
	_ = h.pub.Publish(wire.SubjectWorkersStarted, b)
	labels := `{group="llm",model="phi-3",pid="` + strconv.Itoa(pid) + `",worker_instance="9402"}`
	bustest.WaitFor(t, 10*time.Second, func() error {
		got := h.gathered(t)
		if !strings.Contains(got, "hive_worker_cpu_seconds_total"+labels) || strings.Contains(got, "hive_worker_cpu_seconds_total"+labels+" 0\n") {
			return errors.New("no CPU time of the busy worker yet")
		}
		return nil
	})
	got := h.gathered(t)
	for _, want := range []string{"hive_worker_resident_memory_bytes" + labels, "hive_worker_start_time_seconds" + labels,
		"hive_worker_io_read_bytes_total" + labels, "hive_worker_gpu_memory_bytes" + labels,
		"hive_collector_tick_duration_seconds{}", "hive_telemetry_events_published_total{}", "hive_collector_sample_errors_total{} 0"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %s in\n%s", want, got)
		}
	}
	problems, err := testutil.GatherAndLint(h.reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	_ = h.pub.Publish(wire.SubjectWorkersStopped, b)
	bustest.WaitFor(t, 10*time.Second, func() error {
		if strings.Contains(h.gathered(t), labels) {
			return errors.New("the stopped worker's series are still there")
		}
		return nil
	})
}
