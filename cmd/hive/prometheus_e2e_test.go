package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive/bus/bustest"
)

// A real Prometheus (Debian's package) scrapes the real binary every
// second: the worker's series carry worker_instance (no exported_instance),
// and rate() of a busy worker's CPU agrees with the cpu_pct the hive
// streams over the same seconds.
func TestPrometheusScrapesTheHive(t *testing.T) {
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian's prometheus package; .ci/run installs it)")
	}
	h := startHive(t)
	w := startWorkerReady(t, "--model", "prom-model", "--port", "9377", "--cpu", "0.5", "--mem-mib", "8", "--http=false")
	target := strings.TrimPrefix(strings.TrimPrefix(h.httpBase, "http://"), "https://")
	dir := t.TempDir()
	conf := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: hive\n    static_configs: [{targets: [%q]}]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prom, "--config.file", filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", "127.0.0.1:0", "--log.level", "warn")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	var api string
	bustest.WaitFor(t, 30*time.Second, func() error {
		port, err := listeningPort(cmd.Process.Pid)
		if err != nil {
			return err
		}
		api = "http://127.0.0.1:" + strconv.Itoa(port)
		return nil
	})

	// The SSE stream's cpu_pct of the worker, each second.
	sse := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
	type point struct {
		at  time.Time
		pct float64
	}
	var pts []point
	query := func(q string) ([]promSample, error) {
		resp, err := http.Get(api + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Data   struct{ Result []promSample }
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
			return nil, fmt.Errorf("query %s: %v %s", q, err, r.Status)
		}
		return r.Data.Result, nil
	}
	sel := fmt.Sprintf(`hive_worker_cpu_seconds_total{pid="%d"}`, w.Process.Pid)
	var rate float64
	bustest.WaitFor(t, 90*time.Second, func() error {
		ev := decodeStrict(t, sse.next(t, 10*time.Second).Data)
		for _, ws := range ev.Workers {
			if int(ws.PID) == w.Process.Pid {
				pts = append(pts, point{time.Now(), float64(ws.CPUPct)})
			}
		}
		if len(pts) < 25 {
			return fmt.Errorf("%d events with the worker", len(pts))
		}
		res, err := query("rate(" + sel + "[20s])")
		if err != nil || len(res) != 1 {
			return fmt.Errorf("rate: %v %v", res, err)
		}
		if res[0].Metric["worker_instance"] != "9377" || res[0].Metric["exported_instance"] != "" || res[0].Metric["model"] != "prom-model" {
			t.Fatalf("labels %v", res[0].Metric)
		}
		rate, err = strconv.ParseFloat(res[0].Value[1].(string), 64)
		return err
	})
	// The mean cpu_pct of the last 20 s, against rate() over [20s].
	sum, n := 0.0, 0
	for _, p := range pts {
		if time.Since(p.at) <= 21*time.Second {
			sum, n = sum+p.pct, n+1
		}
	}
	mean := sum / float64(n) / 100
	t.Logf("rate(hive_worker_cpu_seconds_total[20s]) = %.3f cores; mean cpu_pct over the same 20 s = %.3f cores (%d events)", rate, mean, n)
	if d := rate - mean; d > 0.1+0.2*mean || d < -(0.1+0.2*mean) {
		t.Errorf("Prometheus says %.3f cores, the stream %.3f", rate, mean)
	}
}

type promSample struct {
	Metric map[string]string
	Value  []any
}

// listeningPort is the TCP port pid listens on, from /proc: the server was
// told port 0 and bound its own, never one picked for it.
func listeningPort(pid int) (int, error) {
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 9 && fs[3] == "0A" && inodes[fs[9]] { // LISTEN
			_, port, _ := strings.Cut(fs[1], ":")
			p, err := strconv.ParseUint(port, 16, 16)
			return int(p), err
		}
	}
	return 0, fmt.Errorf("pid %d listens on no TCP port yet", pid)
}
