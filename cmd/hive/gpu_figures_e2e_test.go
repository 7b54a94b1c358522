package main

// GPU figures a scheduler can bet on (issue 36), from the real binary on
// the fake NVML library: VRAM as nvidia-smi counts it, per-process shares
// from every sample of the window (and "no_sample" where the driver had
// none, as the H200 recorded), GPM, portless workers, one health path.

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive/bus/wire"
)

// fakeCard is a hive on the fake NVML library with the H200's figures and
// files of its own (reserved, gpm, samples: internal/nvml/fake).
type fakeCard struct {
	*hiveProc
	dir     string
	workers []int
	sse     *sseReader
}

// startFakeCard starts n portless demo workers the library lists on GPU 0
// (8 GiB, then 2 GiB each), writes files (their text may name the
// workers' pids as {0}, {1}, ...) and starts the hive.
func startFakeCard(t *testing.T, n int, files map[string]string, args ...string) *fakeCard {
	t.Helper()
	return startFakeCardEnv(t, n, files, nil, args...)
}

// startFakeCardEnv is startFakeCard with more environment for the hive.
func startFakeCardEnv(t *testing.T, n int, files map[string]string, env []string, args ...string) *fakeCard {
	t.Helper()
	if nvmlHiveBin == "" {
		t.Skip("no C compiler: no cgo hive or fake NVML library")
	}
	c := &fakeCard{dir: t.TempDir()}
	gpus, err := os.ReadFile("../../internal/nvml/testdata/h200-busy/gpus")
	if err != nil {
		t.Fatal(err)
	}
	files["gpus"] = string(gpus)
	var procs strings.Builder
	for i := range n {
		w := startWorker(t, "--model", fmt.Sprintf("card-%d", i), "--cpu", "0", "--http=false")
		c.workers = append(c.workers, w.Process.Pid)
		fmt.Fprintf(&procs, "0 %d %d 0\n", w.Process.Pid, map[bool]int{true: 8192, false: 2048}[i == 0])
	}
	files["procs"] = procs.String()
	for name, text := range files {
		for i, pid := range c.workers {
			text = strings.ReplaceAll(text, fmt.Sprintf("{%d}", i), fmt.Sprint(pid))
		}
		if err := os.WriteFile(filepath.Join(c.dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c.hiveProc = startHiveBin(t, nvmlHiveBin, append([]string{"FAKE_NVML_DIR=" + c.dir, "HIVE_NVML_LIB=" + fakeNVML}, env...),
		append([]string{"--gpu-source", "nvml"}, args...)...)
	c.sse = openSSE(t, c.httpBase+"/v1/heartbeats/stream")
	return c
}

// next is the next event, checked against the Queen's wire.
func (c *fakeCard) next(t *testing.T) wire.TelemetryEvent {
	t.Helper()
	data := c.sse.next(t, 10*time.Second).Data
	checkTelemetryWireKinds(t, data)
	return decodeStrict(t, data)
}

func workerOf(ev wire.TelemetryEvent, pid int) (wire.ProcessStats, bool) {
	for _, w := range ev.Workers {
		if int(w.PID) == pid {
			return w, true
		}
	}
	return wire.ProcessStats{}, false
}

// recordedSamples turns one recorded buffer of the H200 (every answer of
// nvmlDeviceGetProcessUtilization, since the newest sample seen, every
// 250 ms) into the fake's samples file: the busy process's samples at
// their offsets from the first, for the worker {0}; the lighter process
// had none, and has none here.
func recordedSamples(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile("../../internal/nvml/testdata/h200-2026-12-04/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		PA, PB uint64
		Rec    []struct {
			HiveLike [][]uint64 `json:"hive_like"`
		}
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	var first uint64
	seen := map[uint64]bool{}
	for _, r := range rec.Rec {
		for _, s := range r.HiveLike {
			pid, ts, sm := s[0], s[1], s[2]
			if pid == rec.PB {
				t.Fatalf("%s: the lighter process has a sample: the recording is not the one described", file)
			}
			if pid != rec.PA || seen[ts] {
				continue
			}
			seen[ts] = true
			if first == 0 {
				first = ts
			}
			fmt.Fprintf(&out, "0 {0} %d %d 0\n", 300+(ts-first)/1000, sm)
		}
	}
	return out.String()
}

// VRAM as nvidia-smi counts it (v2: reserved apart), GPM, and the H200's
// recorded per-process buffer: the busy worker sampled at its ~90 %, the
// lighter one (no sample in the driver, "-" in pmon) no_sample, not a
// confident 0, and the GPU time nobody's sample accounts for said.
func TestGPUFiguresOnTheRecordedCard(t *testing.T) {
	c := startFakeCard(t, 2, map[string]string{
		"reserved": "0 615\n",
		"gpm":      "0 0.76 0.01 0 0 0 0\n", // the one-thread spin kernel, recorded
		"samples":  recordedSamples(t, "nvml-samples-30pct-duty.json"),
	})
	busy, light := c.workers[0], c.workers[1]
	var ev wire.TelemetryEvent
	deadline := time.Now().Add(30 * time.Second)
	for {
		ev = c.next(t)
		a, _ := workerOf(ev, busy)
		if a.GPUUtilSource == wire.GPUSampled && len(ev.Node.GPUs) == 1 && ev.Node.GPUs[0].SMActivePct != nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(ev)
			t.Fatalf("no event with the busy worker sampled and GPM: %s", b)
		}
	}
	g := ev.Node.GPUs[0]
	if g.VRAMUsedMB != 4909 || g.VRAMReservedMB == nil || *g.VRAMReservedMB != 615 || g.VRAMFreeMB == nil || *g.VRAMFreeMB != 143771-4909-615 {
		t.Errorf("memory: used %d reserved %v free %v, want 4909 (nvidia-smi's), 615, %d", g.VRAMUsedMB, g.VRAMReservedMB, g.VRAMFreeMB, 143771-4909-615)
	}
	if *g.SMActivePct != 0.76 || *g.SMOccupancyPct != 0.01 || *g.TensorActivePct != 0 || *g.DRAMBWPct != 0 {
		t.Errorf("GPM %v %v %v %v, want the fake's 0.76 0.01 0 0", *g.SMActivePct, *g.SMOccupancyPct, *g.TensorActivePct, *g.DRAMBWPct)
	}
	a, _ := workerOf(ev, busy)
	b, _ := workerOf(ev, light)
	// The busy worker's share is a mean of its recorded samples (69 to 93);
	// the lighter one's is no sample, with its memory still told.
	if a.GPUUtilPct < 69 || a.GPUUtilPct > 93 || b.GPUUtilSource != wire.GPUNoSample || b.GPUUtilPct != 0 || b.VRAMMB != 2048 {
		t.Errorf("busy worker %v %% (%s), lighter %v %% (%s, %d MiB); want 69-93 sampled, 0 no_sample with its memory",
			a.GPUUtilPct, a.GPUUtilSource, b.GPUUtilPct, b.GPUUtilSource, b.VRAMMB)
	}
	if u := g.UnattributedPct; u == nil || *u <= 0 || math.Abs(float64(*u)-(98-float64(a.GPUUtilPct))) > 0.051 { // the share is sent to 0.1
		t.Errorf("unattributed %v with the device at 98 and the busy worker at %v", fmtPtr(u), a.GPUUtilPct)
	}
	// hive watch --gpus: the headroom columns, and the lighter worker's
	// share as no measurement ("-"), not 0.
	out, err := runHive(t, nil, "watch", "--once", "--gpus", "--url", c.httpBase)
	if err != nil {
		t.Fatalf("hive watch --gpus: %v\n%s", err, out)
	}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		switch {
		case len(f) > 9 && f[1] == fmt.Sprint(light) && f[9] != "-":
			t.Errorf("hive watch shows the unsampled worker's GPU%% as %s:\n%s", f[9], out)
		case strings.HasPrefix(l, "HIVE") && strings.Contains(l, "RESV MiB") && i+1 < len(lines):
			gf := strings.Fields(lines[i+1])
			if n := len(gf); n < 7 || gf[n-7] != "615" || gf[n-4] != "0.8" || gf[n-1] != "0.0" {
				t.Errorf("hive watch --gpus row %q, want reserved 615, SM 0.8 and DRAM 0.0 last:\n%s", lines[i+1], out)
			}
		}
	}
	if !strings.Contains(out, "TENSOR%") {
		t.Errorf("hive watch --gpus has no headroom columns:\n%s", out)
	}
	_, body, _ := httpGet(t, c.httpBase+"/capabilities")
	if !strings.Contains(body, `"gpu_source":"nvml"`) || !strings.Contains(body, `"gpu_memory_info":"v2"`) {
		t.Errorf("/capabilities: %s", body)
	}
	_, metrics, _ := httpGet(t, c.httpBase+"/metrics")
	for _, want := range []string{"hive_gpu_sm_active_ratio", "hive_gpu_dram_bandwidth_ratio", "hive_gpu_memory_reserved_bytes", `hive_worker_gpu_utilization_sampled{`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// Three samples of a process in one window: the share is their mean,
// each weighted by the time it covers since the one before (1000, 200
// and 100 ms): (90·1000 + 30·200 + 60·100) / 1300 = 78.5, where the
// newest alone said 60. Samples are there by the reading (fake's sixth
// column), so the windows do not depend on the machine's speed.
func TestGPUShareIsTheWindowsWeightedMean(t *testing.T) {
	c := startFakeCard(t, 1, map[string]string{"samples": "0 {0} 600000 10 0 2\n" +
		"0 {0} 601000 90 0 4\n0 {0} 601200 30 0 4\n0 {0} 601300 60 0 4\n"})
	want := map[float64]bool{10: false, 78.5: false}
	deadline := time.Now().Add(30 * time.Second)
	for !want[10] || !want[78.5] {
		if time.Now().After(deadline) {
			t.Fatalf("shares seen: %v, want 10 then 78.5", want)
		}
		w, ok := workerOf(c.next(t), c.workers[0])
		if !ok || w.GPUUtilSource != wire.GPUSampled {
			continue
		}
		v := float64(w.GPUUtilPct)
		if _, ok := want[v]; !ok {
			t.Fatalf("a share of %v: not one of the windows' means", v)
		}
		want[v] = true
	}
}

// A matched worker without --port is "running" and never probed: before,
// its instance (its pid) was taken for a port, asked at
// 127.0.0.1:<pid>/health forever, and it stayed "starting".
func TestPortlessWorkerIsRunningNotProbed(t *testing.T) {
	name := fmt.Sprintf("llm-worker-portless%d", os.Getpid())
	for range 20 { // a worker whose pid is a port this test can listen on
		cmd := startWorkerNamed(t, name)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cmd.Process.Pid))
		if err != nil {
			continue
		}
		var asked atomic.Int64
		srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { asked.Add(1) })}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		h := startHive(t, "--worker-match", "^"+name, "--telemetry-interval", "200ms")
		sse := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
		seen := 0
		for range 10 {
			ev := decodeStrict(t, sse.next(t, 10*time.Second).Data)
			w, ok := workerOf(ev, cmd.Process.Pid)
			if !ok {
				continue
			}
			seen++
			if w.State != wire.WorkerRunning {
				t.Fatalf("a portless worker is %q", w.State)
			}
		}
		if seen < 5 {
			t.Fatalf("the portless worker was in %d of 10 events", seen)
		}
		if n := asked.Load(); n != 0 {
			t.Fatalf("%d requests reached 127.0.0.1:<the worker's pid>", n)
		}
		return
	}
	t.Skip("no worker got a pid this test could listen on")
}

// startWorkerNamed starts a sleeping process named name (argv[0]).
func startWorkerNamed(t *testing.T, name string) *exec.Cmd {
	t.Helper()
	cmd := &exec.Cmd{Path: "/bin/sleep", Args: []string{name, "600"}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	return cmd
}

// One health path: a spawned worker that answers only on /healthz, with
// workers.health-path /healthz, spawns [DONE] and is ready (the spawn used
// to wait on /health and fail while telemetry said ready).
func TestSpawnWaitsOnTheHealthPath(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\nexec " + workerBin + " --health-path /healthz --cpu 0 --mem-mib 1 \"$@\"\n"
	if err := os.WriteFile(dir+"/llm-worker-rbee-cpu", []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h := startHiveEnv(t, []string{"HIVE_WORKER_HEALTH_PATH=/healthz"}, "--worker-dir", dir, "--model-dir", t.TempDir(),
		"--worker-log-dir", t.TempDir(), "--telemetry-interval", "300ms")
	lines := jobStream(t, h.httpBase, postJob(t, h.httpBase, `{"operation":"worker_spawn","hive_id":"h","model":"hz","worker":"cpu","device":0}`))
	killSpawnedAtEnd(t, lines)
	if lastLine(lines) != "[DONE]" {
		t.Fatalf("spawn with /healthz: %s", strings.Join(lines, "\n"))
	}
	sse := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, w := range decodeStrict(t, sse.next(t, 10*time.Second).Data).Workers {
			if w.Model != nil && *w.Model == "hz" && w.State == wire.WorkerReady {
				return
			}
		}
	}
	t.Fatal("the spawned worker is not ready in telemetry")
}

// A GPU worker's spawn on a GPU without limits.min-free-vram-mb free is
// refused at once (409, with the figures); one that names a GPU the hive
// does not have, too.
func TestSpawnRefusedOnAFullGPU(t *testing.T) {
	c := startFakeCard(t, 1, map[string]string{}, "--worker-dir", binDir, "--model-dir", t.TempDir(), "--worker-log-dir", t.TempDir())
	for body, want := range map[string]string{
		`{"operation":"worker_spawn","hive_id":"h","model":"m","worker":"cuda","device":0}`: "",
		`{"operation":"worker_spawn","hive_id":"h","model":"m","worker":"cuda","device":3}`: "GPU 3 is not on this hive",
	} {
		code, b, _ := do(t, "POST", c.httpBase+"/v1/jobs", map[string]string{"Content-Type": "application/json"}, body)
		if want == "" {
			if code == http.StatusConflict {
				t.Errorf("a spawn on a GPU with room was refused: %s", b)
			}
			continue
		}
		if code != http.StatusConflict || !strings.Contains(b, want) {
			t.Errorf("%s: %d %s, want 409 %q", body, code, b, want)
		}
	}
	full := startFakeCard(t, 1, map[string]string{}, "--worker-dir", binDir, "--model-dir", t.TempDir(), "--worker-log-dir", t.TempDir())
	if err := os.WriteFile(filepath.Join(full.dir, "reserved"), []byte("0 138500\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	full.next(t)
	code, b, _ := do(t, "POST", full.httpBase+"/v1/jobs", map[string]string{"Content-Type": "application/json"},
		`{"operation":"worker_spawn","hive_id":"h","model":"m","worker":"cuda","device":0}`)
	if code != http.StatusConflict || !strings.Contains(b, "GPU 0 has 362 MiB free, less than the 1024 MiB") {
		t.Errorf("a spawn on a full GPU: %d %s", code, b)
	}
}

func fmtPtr[T any](p *T) string {
	if p == nil {
		return "absent"
	}
	return fmt.Sprint(*p)
}
