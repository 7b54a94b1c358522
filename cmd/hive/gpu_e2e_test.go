package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rbee/hive/bus/wire"
)

const fakeUUID = "GPU-4d8d8a84-cbed-9747-95cd-d830557304f2"

// gpuHive is the real binary reading the fake NVML library, and a demo
// worker the library says holds memory on GPU 0.
type gpuHive struct {
	*hiveProc
	dir    string // FAKE_NVML_DIR
	worker int
	sse    *sseReader
}

func startGPUHive(t *testing.T) *gpuHive {
	t.Helper()
	if nvmlHiveBin == "" {
		t.Skip("no C compiler: no cgo hive or fake NVML library")
	}
	dir := t.TempDir()
	gpus, err := os.ReadFile("../../internal/nvml/testdata/h200-busy/gpus")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gpus"), gpus, 0o644); err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, "--model", "gpu-model", "--port", "9401", "--cpu", "0", "--http=false")
	procs := fmt.Sprintf("0 %d 2048 55\n", w.Process.Pid)
	if err := os.WriteFile(filepath.Join(dir, "procs"), []byte(procs), 0o644); err != nil {
		t.Fatal(err)
	}
	h := startHiveBin(t, nvmlHiveBin, []string{"FAKE_NVML_DIR=" + dir, "HIVE_NVML_LIB=" + fakeNVML}, "--gpu-source", "nvml")
	return &gpuHive{hiveProc: h, dir: dir, worker: w.Process.Pid, sse: openSSE(t, h.httpBase+"/v1/heartbeats/stream")}
}

// inject appends one line to the fake library's control file.
func (g *gpuHive) inject(t *testing.T, line string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(g.dir, "control"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

// await reads events until one satisfies ok, within timeout.
func (g *gpuHive) await(t *testing.T, timeout time.Duration, what string, ok func(wire.TelemetryEvent) bool) wire.TelemetryEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last wire.TelemetryEvent
	for time.Now().Before(deadline) {
		ev := g.sse.next(t, timeout)
		checkTelemetryWireKinds(t, ev.Data)
		last = decodeStrict(t, ev.Data)
		if ok(last) {
			return last
		}
	}
	b, _ := json.Marshal(last)
	t.Fatalf("no event with %s within %v; the last:\n%s", what, timeout, b)
	return last
}

// checkTelemetryWireKinds is the wire check without its healthy-only
// hive_info rule: these events are meant to carry other health.
func checkTelemetryWireKinds(t *testing.T, data string) {
	t.Helper()
	var probe map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &probe); err != nil {
		t.Fatal(err)
	}
	if err := checkNodeWire(probe["node"]); err != nil {
		t.Fatal(err)
	}
	if err := checkWorkersWire(probe["workers"]); err != nil {
		t.Fatal(err)
	}
}

func gpu0(ev wire.TelemetryEvent) (wire.NodeGPU, bool) {
	if len(ev.Node.GPUs) != 1 || ev.Node.GPUs[0].UUID != fakeUUID {
		return wire.NodeGPU{}, false
	}
	return ev.Node.GPUs[0], true
}

// healthIs says the hive's and GPU 0's health are status, the hive's
// reason naming GPU 0 and holding reason.
func healthIs(status, reason string) func(wire.TelemetryEvent) bool {
	return func(ev wire.TelemetryEvent) bool {
		g, ok := gpu0(ev)
		h := ev.HiveInfo.HealthStatus
		return ok && h.Status == status && g.Health.Status == status && strings.Contains(h.Reason, reason) &&
			(status == wire.HealthHealthy || strings.Contains(h.Reason, "GPU 0 ("+fakeUUID+")"))
	}
}

// The real binary reads the fake library as it would a card: the node
// block, the worker's share of its GPU, /capabilities with the driver.
func TestNVMLNodeBlockAndWorker(t *testing.T) {
	g := startGPUHive(t)
	ev := g.await(t, 10*time.Second, "the worker on GPU 0", func(ev wire.TelemetryEvent) bool {
		for _, w := range ev.Workers {
			if int(w.PID) == g.worker {
				return slices.Equal(w.GPUIndices, []int{0}) && w.VRAMMB == 2048 && w.GPUUtilPct == 55 && w.TotalVRAMMB == 143771
			}
		}
		return false
	})
	d, _ := gpu0(ev)
	if d.Name != "NVIDIA H200" || d.UtilPct != 98 || d.VRAMUsedMB != 4909 || d.TempC == nil || *d.TempC != 63 ||
		d.PowerW == nil || *d.PowerW != 681 || *d.PowerLimitW != 700 || d.ECCUncorrected == nil || d.Health != wire.Healthy {
		b, _ := json.Marshal(d)
		t.Fatalf("GPU 0: %s", b)
	}
	_, body, _ := httpGet(t, g.httpBase+"/capabilities")
	var caps wire.Capabilities
	if err := json.Unmarshal([]byte(body), &caps); err != nil || caps.GPUSource != "nvml" || caps.DriverVersion != "580.159.04" ||
		caps.CUDAVersion != "13.0" || caps.Devices[0].Name != "NVIDIA H200" || *caps.Devices[0].ComputeCapability != "9.0" {
		t.Fatalf("capabilities %s: %v", body, err)
	}
	_, metrics, _ := httpGet(t, g.httpBase+"/metrics")
	for _, want := range []string{`hive_gpu_source_info{hive_id=`, `hive_gpu_temperature_celsius{gpu="0"`, `hive_gpu_health{gpu="0"`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("no %s in /metrics", want)
		}
	}
}

// Every rule of the health table that the driver can show, through the
// fake library, against the real binary: the SSE health_status and
// node.gpus[0].health as docs/GPUS.md's table says.
func TestGPUHealthRules(t *testing.T) {
	for _, tc := range []struct {
		name    string
		inject  []string
		status  string
		reason  string
		cleared []string // lines that make it healthy again, if any
	}{
		{"application xid is counted only", []string{"xid 0 13"}, wire.HealthHealthy, "", nil},
		{"reset xid", []string{"xid 0 79"}, wire.HealthUnhealthy, "XID 79 (ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS): reboot needed", nil},
		{"degrading xid", []string{"xid 0 74"}, wire.HealthDegraded, "XID 74 (NVLINK_ERROR)", nil},
		{"lost", []string{"lost 0"}, wire.HealthUnhealthy, "is lost", []string{"clear 0"}},
		{"ecc", []string{"ecc 0 2"}, wire.HealthDegraded, "2 uncorrectable ECC errors: reboot needed", []string{"clear 0"}},
		{"pcie replays", []string{"replay 0 500"}, wire.HealthDegraded, "100 or more PCIe replays in 1m0s", nil},
		{"nvlink errors", []string{"nvlink 0 500"}, wire.HealthDegraded, "100 or more NVLink replay and recovery errors", nil},
		{"power cap is no fault", []string{"throttle 0 sw_power_cap", "temp 0 84"}, wire.HealthHealthy, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := startGPUHive(t)
			g.await(t, 10*time.Second, "GPU 0 healthy", healthIs(wire.HealthHealthy, ""))
			for _, l := range tc.inject {
				g.inject(t, l)
			}
			if tc.status == wire.HealthHealthy {
				// Healthy must hold once the injection is visible.
				g.await(t, 10*time.Second, "the injection applied", func(ev wire.TelemetryEvent) bool {
					d, ok := gpu0(ev)
					_, metrics, _ := httpGet(t, g.httpBase+"/metrics")
					return ok && (strings.Contains(metrics, `hive_gpu_xid_errors_total{gpu="0",hive_id=`) || len(d.Throttle) > 0)
				})
				ev := g.await(t, 5*time.Second, "the next event", func(wire.TelemetryEvent) bool { return true })
				if !healthIs(wire.HealthHealthy, "")(ev) {
					t.Fatalf("health %+v", ev.HiveInfo.HealthStatus)
				}
				return
			}
			g.await(t, 10*time.Second, tc.status+" "+tc.reason, healthIs(tc.status, tc.reason))
			if tc.cleared != nil {
				for _, l := range tc.cleared {
					g.inject(t, l)
				}
				g.await(t, 10*time.Second, "healthy again", healthIs(wire.HealthHealthy, ""))
			}
		})
	}
}

// A GPU held in a thermal slowdown for most of a minute is degraded, and
// healthy the tick it stops.
func TestGPUSlowdownRule(t *testing.T) {
	t.Parallel()
	g := startGPUHive(t)
	g.await(t, 10*time.Second, "GPU 0 healthy", healthIs(wire.HealthHealthy, ""))
	g.inject(t, "throttle 0 hw_thermal_slowdown")
	g.await(t, 50*time.Second, "a slowdown over half the minute", healthIs(wire.HealthDegraded, "hw_thermal_slowdown for"))
	// While it lasts it is one health: no change counted or logged per
	// tick (before, the reason named the seconds and changed each tick).
	changes := func() float64 {
		_, m, _ := httpGet(t, g.httpBase+"/metrics")
		v, _ := metricValue(m, "hive_health_changes_total", `status="degraded"`)
		return v
	}
	before, warns := changes(), g.countLogs("hive health: degraded")
	if before < 1 || warns < 1 {
		t.Fatalf("the change to degraded was not counted (%v) or logged (%d)", before, warns)
	}
	for range 4 {
		g.await(t, 10*time.Second, "still slowed", healthIs(wire.HealthDegraded, "hw_thermal_slowdown for"))
	}
	if after := changes(); after != before || g.countLogs("hive health: degraded") != warns {
		t.Errorf("a sustained slowdown counted %v health changes and logged %d more in 4 ticks", after-before, g.countLogs("hive health: degraded")-warns)
	}
	g.inject(t, "throttle 0 gpu_idle")
	g.await(t, 10*time.Second, "healthy again", healthIs(wire.HealthHealthy, ""))
}

// GPUs that could be read and no longer can: degraded.
func TestGPUNoLongerReadable(t *testing.T) {
	t.Parallel()
	g := startGPUHive(t)
	g.await(t, 10*time.Second, "GPU 0 healthy", healthIs(wire.HealthHealthy, ""))
	if err := os.WriteFile(filepath.Join(g.dir, "gpus"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	g.await(t, 10*time.Second, "degraded", func(ev wire.TelemetryEvent) bool {
		h := ev.HiveInfo.HealthStatus
		return h.Status == wire.HealthDegraded && strings.Contains(h.Reason, "could be read and no longer can")
	})
}

// A driver call that hangs for 3 s marks the figures stale (degraded),
// and the ticks keep their cadence meanwhile: no more ticks are skipped
// than in a quiet control stretch before it.
func TestGPUHangKeepsTheTick(t *testing.T) {
	t.Parallel()
	g := startGPUHive(t)
	g.await(t, 10*time.Second, "GPU 0 healthy", healthIs(wire.HealthHealthy, ""))
	skipped := func(n int) int {
		prev, skips := time.Time{}, 0
		for range n {
			ev := decodeStrict(t, g.sse.next(t, 10*time.Second).Data)
			at, err := time.Parse(time.RFC3339Nano, ev.Timestamp)
			if err != nil {
				t.Fatal(err)
			}
			if !prev.IsZero() {
				skips += int(at.Sub(prev).Round(time.Second)/time.Second) - 1
			}
			prev = at
		}
		return skips
	}
	control := skipped(4)
	g.inject(t, "hang 3000")
	stale := g.await(t, 10*time.Second, "stale GPU figures", func(ev wire.TelemetryEvent) bool {
		return ev.HiveInfo.HealthStatus.Status == wire.HealthDegraded && strings.Contains(ev.HiveInfo.HealthStatus.Reason, "stale")
	})
	// The GPU is still shown, with its last figures, marked stale: a
	// wedged driver is not a machine without GPUs.
	if gs, ok := gpu0(stale); !ok || gs.VRAMTotalMB == 0 || gs.Health.Status != wire.HealthDegraded || !strings.Contains(gs.Health.Reason, "stale") {
		t.Errorf("node.gpus while the driver hangs: %+v", stale.Node.GPUs)
	}
	during := skipped(3)
	// A tick stuck behind the 3 s call would skip two or three; a hung
	// tick waits 0.8 s for the GPU by design, and on a starved machine the
	// rest of that tick can push one tick past its slot. One is not a
	// stall; two are, unless the control skipped as many.
	if during >= 2 && during > control {
		t.Errorf("%d ticks skipped during the hang, %d in the control", during, control)
	}
	t.Logf("during the hang: %d skipped ticks (control %d); %q", during, control, stale.HiveInfo.HealthStatus.Reason)
	g.await(t, 15*time.Second, "healthy after the hang", healthIs(wire.HealthHealthy, ""))
	if !strings.Contains(g.logText(), "did not return in time") {
		t.Error("the wedged call was not logged")
	}
	_, metrics, _ := httpGet(t, g.httpBase+"/metrics")
	if v, ok := metricValue(metrics, "hive_gpu_source_wedged_total"); !ok || v < 1 {
		t.Errorf("hive_gpu_source_wedged_total %v %v", v, ok)
	}
}

// A reset-class XID is unhealthy until a reset or reboot, also once the
// driver stops listing the GPU or stops answering (a GPU that fell off
// the bus often takes the listing with it): before, that turned it into
// a degraded "no longer readable".
func TestGPUResetXIDStaysUnhealthyWhenUnlisted(t *testing.T) {
	t.Parallel()
	g := startGPUHive(t)
	g.await(t, 10*time.Second, "GPU 0 healthy", healthIs(wire.HealthHealthy, ""))
	g.inject(t, "xid 0 79")
	g.await(t, 10*time.Second, "XID 79", healthIs(wire.HealthUnhealthy, "XID 79"))
	if err := os.WriteFile(filepath.Join(g.dir, "gpus"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ev := g.await(t, 10*time.Second, "an event without the GPU", func(ev wire.TelemetryEvent) bool { return len(ev.Node.GPUs) == 0 })
		if h := ev.HiveInfo.HealthStatus; h.Status != wire.HealthUnhealthy || !strings.Contains(h.Reason, "XID 79") {
			t.Fatalf("the GPU unlisted after XID 79: hive health %+v", h)
		}
	}
}
