package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/rbee/hive/bus/bustest"
)

// metricValue finds one sample in a text exposition.
func metricValue(body, name string, labels ...string) (float64, bool) {
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(line, l)
		}
		if !match {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil
	}
	return 0, false
}

// GET /metrics on the real binary shows a burning worker's series, rising,
// and the hive's own; a finished job is counted.
func TestMetricsOfARealWorker(t *testing.T) {
	h := startHive(t, "--telemetry-interval", "200ms", "--model-dir", t.TempDir(), "--worker-dir", binDir, "--worker-log-dir", t.TempDir())
	w := startWorker(t, "--model", "tinyllama", "--port", "9321", "--cpu", "1", "--http=false")
	pid := `pid="` + strconv.Itoa(w.Process.Pid) + `"`
	var first float64
	bustest.WaitFor(t, 10*time.Second, func() error {
		_, body, _ := httpGet(t, h.httpBase+"/metrics")
		v, ok := metricValue(body, "hive_worker_cpu_seconds_total", pid, `model="tinyllama"`, `worker_instance="9321"`)
		if !ok || v <= 0 {
			return fmt.Errorf("no CPU series of the worker yet")
		}
		first = v
		return nil
	})
	jobStream(t, h.httpBase, postJob(t, h.httpBase, `{"operation":"model_list","hive_id":"h"}`))
	var body string
	bustest.WaitFor(t, 10*time.Second, func() error {
		_, body, _ = httpGet(t, h.httpBase+"/metrics")
		if v, _ := metricValue(body, "hive_worker_cpu_seconds_total", pid); v <= first {
			return fmt.Errorf("CPU counter did not rise above %v", first)
		}
		return nil
	})
	for _, want := range []string{"hive_worker_resident_memory_bytes", "hive_worker_start_time_seconds", "hive_collector_tick_duration_seconds_bucket",
		"hive_telemetry_events_published_total", "hive_sse_subscribers", "hive_build_info", "go_goroutines"} {
		if _, ok := metricValue(body, want); !ok {
			t.Errorf("no %s in /metrics", want)
		}
	}
	if v, ok := metricValue(body, "hive_jobs_total", `operation="model_list"`, `result="done"`); !ok || v != 1 {
		t.Errorf("hive_jobs_total for model_list: %v %v", v, ok)
	}
	if code, _, hdr := httpGet(t, h.httpBase+"/metrics"); code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("content type %q", hdr.Get("Content-Type"))
	}
	// Every module's series, in the one registry, with the hive's label.
	for _, name := range []string{"hive_sse_subscribers", "hive_jobs_running", "hive_discovery_push_failures_total",
		"hive_nats_observers", "hive_collector_sample_errors_total", "hive_build_info"} {
		if _, ok := metricValue(body, name, `hive_id="`); !ok {
			t.Errorf("no %s with a hive_id label", name)
		}
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// A scrape while 1,000 SSE clients are connected answers, and counts them.
// (Its cost does not grow with them: the gateway keeps its counters as it
// goes; the figure is logged, not asserted.)
func TestMetricsScrapeWithThousandClients(t *testing.T) {
	const n = 1000
	h := startHive(t, "--http-max-conns", "2000", "--http-max-conns-per-ip", "2000")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: n}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	started := make(chan error, n)
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.httpBase+"/v1/heartbeats/stream", nil)
			resp, err := client.Do(req)
			if err != nil {
				started <- err
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			sent := false
			for sc.Scan() {
				if !sent && strings.HasPrefix(sc.Text(), "data: ") {
					started <- nil
					sent = true
				}
			}
		})
	}
	for range n {
		if err := <-started; err != nil {
			t.Fatalf("SSE client: %v", err)
		}
	}
	var body string
	var took time.Duration
	bustest.WaitFor(t, 10*time.Second, func() error {
		start := time.Now()
		_, body, _ = httpGet(t, h.httpBase+"/metrics")
		took = time.Since(start)
		if v, _ := metricValue(body, "hive_sse_subscribers"); v != n {
			return fmt.Errorf("hive_sse_subscribers %v, want %d", v, n)
		}
		return nil
	})
	t.Logf("scrape with %d SSE clients: %v, %d bytes", n, took, len(body))
}
