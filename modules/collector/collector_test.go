package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shirou/gopsutil/v3/process"
	"go.uber.org/goleak"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/gpu"
	"github.com/rbee/hive/internal/nvsmi"
	"github.com/rbee/hive/internal/proctest"
	"github.com/rbee/hive/internal/workerproc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// spawn starts a real process and kills and reaps it when t ends.
func spawn(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd
}

// marker makes a command-line token unique to this test run, so workers of
// tests running in parallel elsewhere never match.
func marker(t *testing.T) string {
	return fmt.Sprintf("llm-worker-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-"))
}

func TestMatchSourceFoldsMatchingChildren(t *testing.T) {
	m := marker(t)
	// The parent shell matches, and so does the shell it starts; the
	// trailing "; true" keeps each shell from exec-ing into sleep.
	parent := spawn(t, "sh", "-c", `sh -c "sleep 60; true" `+m+`-child; true`, m, "--port", "9555", "--model=tinyllama")
	src, err := NewMatchSource(m, workerproc.OnCmdline)
	if err != nil {
		t.Fatal(err)
	}
	var got []Worker
	bustest.WaitFor(t, 5*time.Second, func() error {
		got, err = src.Scan(context.Background())
		if err != nil {
			return err
		}
		if len(got) != 1 || len(got[0].PIDs) != 2 {
			return fmt.Errorf("workers %+v", got)
		}
		return nil
	})
	w := got[0]
	if w.PIDs[0] != int32(parent.Process.Pid) || w.Group != "llm" || w.Instance != "9555" || w.Model != "tinyllama" {
		t.Fatalf("worker %+v (parent pid %d)", w, parent.Process.Pid)
	}
}

func TestMatchSourceInstanceFallsBackToPID(t *testing.T) {
	m := marker(t)
	p := spawn(t, "sh", "-c", "sleep 60; true", m)
	src, _ := NewMatchSource(m, workerproc.OnCmdline)
	bustest.WaitFor(t, 5*time.Second, func() error {
		got, _ := src.Scan(context.Background())
		if len(got) != 1 || got[0].Instance != strconv.Itoa(p.Process.Pid) || got[0].Model != "" {
			return fmt.Errorf("workers %+v", got)
		}
		return nil
	})
	if _, err := NewMatchSource("(", workerproc.OnExe); err == nil {
		t.Fatal("bad regexp accepted")
	}
}

func TestCgroupSource(t *testing.T) {
	root := t.TempDir()
	p := spawn(t, "sh", "-c", "sleep 60; true", "--model", "qwen")
	write := func(rel, content string) {
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("llm/9001/cgroup.procs", strconv.Itoa(p.Process.Pid)+"\n")
	write("llm/9002/cgroup.procs", "") // stale: skipped
	write("vllm/cgroup.procs", "1\n")  // a file where a group dir belongs
	got, err := (&CgroupSource{Root: root}).Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Group != "llm" || got[0].Instance != "9001" || got[0].Model != "qwen" ||
		got[0].PIDs[0] != int32(p.Process.Pid) {
		t.Fatalf("workers %+v", got)
	}
	if got, err := (&CgroupSource{Root: filepath.Join(root, "missing")}).Scan(context.Background()); err != nil || got != nil {
		t.Fatalf("missing root: %v %v", got, err)
	}
}

func TestSamplerDropsExitedProcess(t *testing.T) {
	p := spawn(t, "sh", "-c", "sleep 60; true")
	s := newSampler()
	w := Worker{PIDs: []int32{int32(p.Process.Pid)}, Group: "llm", Instance: "1"}
	if _, ok := s.sample(context.Background(), w); !ok {
		t.Fatal("live process not sampled")
	}
	s.endTick()
	_ = p.Process.Kill()
	_ = p.Wait()
	if st, ok := s.sample(context.Background(), w); ok {
		t.Fatalf("exited process sampled: %+v", st)
	}
}

// collectorHarness runs a collector on a real bus and hands out its events.
type collectorHarness struct {
	c      *Collector
	reg    *prometheus.Registry // the collector's metrics, pedantic
	events chan wire.TelemetryEvent
	pub    *bus.Conn
	done   chan error
	stop   func() error // cancels Run's ctx and returns its error; once
}

func startCollector(t *testing.T, cfg Config) *collectorHarness {
	t.Helper()
	b := bustest.Start(t)
	if cfg.Hive.ID == "" {
		cfg.Hive = wire.HiveInfo{ID: "h1", Hostname: "10.0.0.1", Port: 7835, Version: "test"}
	}
	if cfg.Interval == 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	reg := prometheus.NewPedanticRegistry()
	c, err := New(cfg, b, bustest.Logger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := b.Connect("test-sub")
	if err != nil {
		t.Fatal(err)
	}
	h := &collectorHarness{c: c, reg: reg, events: make(chan wire.TelemetryEvent, 256), pub: sub, done: make(chan error, 1)}
	if _, err := sub.Subscribe(wire.SubjectTelemetry, func(m *nats.Msg) {
		if m.Header.Get(wire.HeaderHiveID) != cfg.Hive.ID {
			t.Errorf("Hive-Id header %q", m.Header.Get(wire.HeaderHiveID))
		}
		var ev wire.TelemetryEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Errorf("bad event: %v", err)
			return
		}
		select {
		case h.events <- ev:
		default:
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { h.done <- c.Run(ctx) }()
	var once sync.Once
	var runErr error
	h.stop = func() error {
		once.Do(func() { cancel(); runErr = <-h.done })
		return runErr
	}
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	// The first event comes after Run subscribed to worker announcements.
	h.waitEvent(t, 5*time.Second, func(wire.TelemetryEvent) bool { return true })
	return h
}

// waitWorker returns the first event for which pred holds of the worker
// with pid (or of its absence, when pid is missing and pred accepts nil).
func (h *collectorHarness) waitEvent(t *testing.T, timeout time.Duration, pred func(wire.TelemetryEvent) bool) wire.TelemetryEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-h.events:
			if pred(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no matching telemetry within %v", timeout)
		}
	}
}

func findPID(ev wire.TelemetryEvent, pid int) *wire.ProcessStats {
	for i := range ev.Workers {
		if int(ev.Workers[i].PID) == pid {
			return &ev.Workers[i]
		}
	}
	return nil
}

func TestAnnouncedWorkerLifecycle(t *testing.T) {
	h := startCollector(t, Config{})
	p := spawn(t, "sh", "-c", "sleep 60; true")
	pid := p.Process.Pid
	announce := func(subject string) {
		b, _ := json.Marshal(wire.WorkerEvent{PID: pid, Group: "llm", Instance: "9400", Model: "phi-3"})
		if err := h.pub.Publish(subject, b); err != nil {
			t.Fatal(err)
		}
	}
	announce(wire.SubjectWorkersStarted)
	ev := h.waitEvent(t, 3*time.Second, func(ev wire.TelemetryEvent) bool { return findPID(ev, pid) != nil })
	w := findPID(ev, pid)
	if w.Group != "llm" || w.Instance != "9400" || w.Model == nil || *w.Model != "phi-3" {
		t.Fatalf("worker %+v", w)
	}
	if ev.Type != "telemetry" || ev.HiveID != "h1" || ev.HiveInfo.OperationalStatus != wire.StatusReady {
		t.Fatalf("event %+v", ev)
	}
	announce(wire.SubjectWorkersStopped)
	h.waitEvent(t, 3*time.Second, func(ev wire.TelemetryEvent) bool { return findPID(ev, pid) == nil })

	// A bad body is logged and ignored; the collector still takes the
	// next announcement and publishes it (an event buffered before would
	// not show the worker again).
	if err := h.pub.Publish(wire.SubjectWorkersStarted, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	announce(wire.SubjectWorkersStarted)
	h.waitEvent(t, 3*time.Second, func(ev wire.TelemetryEvent) bool { return findPID(ev, pid) != nil })
}

func TestAnnouncedWorkerGoneWhenProcessExits(t *testing.T) {
	h := startCollector(t, Config{})
	p := spawn(t, "sh", "-c", "sleep 60; true")
	pid := p.Process.Pid
	b, _ := json.Marshal(wire.WorkerEvent{PID: pid, Instance: "9401"})
	_ = h.pub.Publish(wire.SubjectWorkersStarted, b)
	h.waitEvent(t, 3*time.Second, func(ev wire.TelemetryEvent) bool { return findPID(ev, pid) != nil })
	_ = p.Process.Kill()
	_ = p.Wait()
	h.waitEvent(t, 3*time.Second, func(ev wire.TelemetryEvent) bool { return findPID(ev, pid) == nil })
	h.c.announced.mu.Lock()
	n := len(h.c.announced.workers)
	h.c.announced.mu.Unlock()
	if n != 0 {
		t.Fatalf("announced set still holds %d entries", n)
	}
}

func TestBusyWorkerCPUAndGPUJoin(t *testing.T) {
	m := marker(t)
	gpuDir := t.TempDir()
	h := startCollector(t, Config{WorkerMatch: m, WorkerMatchOn: workerproc.OnCmdline, Interval: 250 * time.Millisecond, GPU: gpu.FromRunner(nvsmi.Replay{Dir: gpuDir})})
	p := spawn(t, "sh", "-c", "while :; do :; done", m, "--port", "9600")
	pid := p.Process.Pid
	gpus, _ := os.ReadFile("../../internal/nvsmi/testdata/gpu2/query-gpu.csv")
	_ = os.WriteFile(filepath.Join(gpuDir, "query-gpu.csv"), gpus, 0o644)
	apps := fmt.Sprintf("%d, GPU-aaaaaaaa-0000-0000-0000-000000000000, 20000\n%d, GPU-bbbbbbbb-1111-1111-1111-111111111111, 1000\n", pid, pid)
	_ = os.WriteFile(filepath.Join(gpuDir, "query-compute-apps.csv"), []byte(apps), 0o644)

	// The first sample is an average since the process started; from the
	// second on, cpu_pct is a delta over one tick. Whatever share of a
	// core the spinning shell gets on a busy machine, the CPU time the
	// events add up to must be what /proc says it used meanwhile (the
	// control), read when the first and the last event arrive.
	withPID := func(ev wire.TelemetryEvent) bool { return findPID(ev, pid) != nil }
	stamp := func(ev wire.TelemetryEvent) time.Time {
		ts, err := time.Parse(time.RFC3339Nano, ev.Timestamp)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	ev := h.waitEvent(t, 5*time.Second, withPID)
	first, prev := proctest.CPU(t, pid), stamp(ev)
	reported := 0.0
	for range 5 {
		ev = h.waitEvent(t, 5*time.Second, withPID)
		ts := stamp(ev)
		reported += float64(findPID(ev, pid).CPUPct) / 100 * ts.Sub(prev).Seconds()
		prev = ts
	}
	control := proctest.CPU(t, pid) - first
	t.Logf("CPU over 5 ticks: events %.3f s, /proc %.3f s", reported, control)
	if control < 0.05 {
		t.Fatalf("the spinning shell got %.3f s of CPU: no control", control)
	}
	if d := reported - control; d > 0.1+0.15*control || d < -(0.1+0.15*control) {
		t.Errorf("events add up to %.3f s of CPU, /proc says %.3f s", reported, control)
	}
	w := findPID(ev, pid)
	if w.RSSMB == 0 || w.UptimeS > 60 {
		t.Errorf("implausible sample for a fresh shell %+v", w)
	}
	// Two GPUs: memory summed over both; utilisation is the mean of the
	// ones that report it (GPU 1 says [N/A]).
	if w.VRAMMB != 21000 || w.TotalVRAMMB != 24576+81920 || w.GPUUtilPct != 87 {
		t.Errorf("gpu fields %+v", w)
	}
	if w.Instance != "9600" {
		t.Errorf("instance %q", w.Instance)
	}

	// GPU gone: zeros, not stale numbers.
	_ = os.Remove(filepath.Join(gpuDir, "query-gpu.csv"))
	ev = h.waitEvent(t, 3*time.Second, func(ev wire.TelemetryEvent) bool {
		w := findPID(ev, pid)
		return w != nil && w.VRAMMB == 0
	})
	if w := findPID(ev, pid); w.TotalVRAMMB != 0 || w.GPUUtilPct != 0 {
		t.Errorf("no GPU: %+v", w)
	}
}

func TestStoppingEventOnStop(t *testing.T) {
	h := startCollector(t, Config{})
	h.waitEvent(t, 3*time.Second, func(ev wire.TelemetryEvent) bool { return ev.HiveInfo.OperationalStatus == wire.StatusReady })
	stopped := make(chan error, 1)
	go func() { stopped <- h.stop() }()
	ev := h.waitEvent(t, 3*time.Second, func(ev wire.TelemetryEvent) bool { return ev.HiveInfo.OperationalStatus != wire.StatusReady })
	if ev.HiveInfo.OperationalStatus != wire.StatusStopping {
		t.Fatalf("status %q", ev.HiveInfo.OperationalStatus)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

func TestNewValidates(t *testing.T) {
	b := bustest.Start(t)
	for name, cfg := range map[string]Config{
		"no interval": {Hive: wire.HiveInfo{ID: "x"}},
		"no hive id":  {Interval: time.Second},
		"bad match":   {Hive: wire.HiveInfo{ID: "x"}, Interval: time.Second, WorkerMatch: "(["},
	} {
		if _, err := New(cfg, b, nil, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(Config{Hive: wire.HiveInfo{ID: "x"}, Interval: time.Second}, nil, nil, nil); err == nil {
		t.Error("nil bus accepted")
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// A pid whose start time changed is another process: its counters start
// afresh (first-sample semantics), never as a delta against the old one.
func TestSamplerResetsOnPIDReuse(t *testing.T) {
	p := spawn(t, "sh", "-c", "while :; do :; done")
	pid := int32(p.Process.Pid)
	bustest.WaitFor(t, 10*time.Second, func() error {
		if c := proctest.CPU(t, int(pid)); c < 0.1 {
			return fmt.Errorf("the spinner has used %.2f s of CPU", c)
		}
		return nil
	})
	s := newSampler()
	w := Worker{PIDs: []int32{pid}, Group: "llm", Instance: "1"}
	if _, ok := s.sample(context.Background(), w); !ok {
		t.Fatal("not sampled")
	}
	s.endTick()
	// Pretend the state belongs to an older process with that pid, last
	// read 10 s ago with the same CPU time as now: a delta would say ~0%.
	st := s.procs[pid]
	st.createTime -= 60_000
	st.at = st.at.Add(-10 * time.Second)
	got, ok := s.sample(context.Background(), w)
	if !ok {
		t.Fatal("not sampled")
	}
	// Measured against the fake old reading, the few ms of CPU since the
	// first sample over 10 s would be ~0.1%; from the process's own start
	// it is its average share of a core since then, which /proc gives as
	// the control (whatever the machine's load).
	ct, _ := process.NewProcess(pid)
	created, _ := ct.CreateTime()
	control := proctest.CPU(t, int(pid)) / time.Since(time.UnixMilli(created)).Seconds() * 100
	t.Logf("cpu_pct %v, /proc average since start %.1f", got.CPUPct, control)
	if float64(got.CPUPct) < control/2 {
		t.Fatalf("cpu_pct %v against an average of %.1f since start: a reused pid was measured against the old process's counters", got.CPUPct, control)
	}
	if s.procs[pid].createTime == st.createTime {
		t.Fatal("state not replaced")
	}
}

// A worker's descendants count toward it even when they do not match (a
// server's helper processes): the busy child here does not carry the
// marker, yet its CPU and memory are the worker's.
func TestNonMatchingChildCountsTowardTheWorker(t *testing.T) {
	m := marker(t)
	h := startCollector(t, Config{WorkerMatch: m, WorkerMatchOn: workerproc.OnCmdline, Interval: 250 * time.Millisecond})
	// The outer shell matches (its arguments carry the marker); the child
	// it starts is a plain busy shell; the outer one only waits.
	parent := spawn(t, "sh", "-c", `sh -c "while :; do :; done" & wait`, m)
	var child int
	bustest.WaitFor(t, 5*time.Second, func() error {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", parent.Process.Pid, parent.Process.Pid))
		if f := strings.Fields(string(b)); len(f) == 1 {
			child, _ = strconv.Atoi(f[0])
			return nil
		}
		return fmt.Errorf("children of %d: %q", parent.Process.Pid, b)
	})
	withWorker := func(ev wire.TelemetryEvent) bool { return findPID(ev, parent.Process.Pid) != nil }
	stamp := func(ev wire.TelemetryEvent) time.Time {
		ts, err := time.Parse(time.RFC3339Nano, ev.Timestamp)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	both := func() float64 { return proctest.CPU(t, parent.Process.Pid) + proctest.CPU(t, child) }
	ev := h.waitEvent(t, 5*time.Second, withWorker)
	first, prev := both(), stamp(ev)
	reported := 0.0
	for range 5 {
		ev = h.waitEvent(t, 5*time.Second, withWorker)
		ts := stamp(ev)
		reported += float64(findPID(ev, parent.Process.Pid).CPUPct) / 100 * ts.Sub(prev).Seconds()
		prev = ts
	}
	control := both() - first
	t.Logf("worker CPU over 5 ticks: telemetry %.3f s, /proc (parent + busy child) %.3f s", reported, control)
	if control < 0.05 {
		t.Fatalf("the busy child got %.3f s of CPU: no control", control)
	}
	if d := reported - control; d > 0.1+0.2*control || d < -(0.1+0.2*control) {
		t.Errorf("the worker's cpu_pct adds up to %.3f s, parent and child used %.3f s: the child is not counted", reported, control)
	}
	if findPID(ev, child) != nil {
		t.Error("the child is reported as a worker of its own")
	}
	// Memory too: the worker's RSS is the parent's and the child's.
	sum := (rssBytes(t, parent.Process.Pid) + rssBytes(t, child)) >> 20
	if w := findPID(ev, parent.Process.Pid); w.RSSMB+1 < sum {
		t.Errorf("worker rss_mb %d, parent and child hold %d MiB", w.RSSMB, sum)
	}
}

func rssBytes(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}
