package collector

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rbee/hive/bus/wire"
)

const testUUID = "GPU-4d8d8a84-cbed-9747-95cd-d830557304f2"

// nvmlDevice is a GPU as NVML reads it: every optional figure present.
func nvmlDevice() GPUDevice {
	return GPUDevice{Index: 0, UUID: testUUID, Name: "NVIDIA H200", UtilPct: 0, MemTotalMiB: 143771,
		Has: HasTemp | HasPower | HasThrottle | HasECC | HasRemap, TempC: 41, PowerW: 120, PowerLimitW: 700}
}

// Every rule of the table, one tick after a healthy one.
func TestHealthRules(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		change func(*GPUSnapshot)
		gpuErr error
		proc   error
		want   string // the hive's status
		reason string // in the hive's reason
		gpu    string // the GPU's status; "" when it is not listed
	}{
		{"healthy", func(*GPUSnapshot) {}, nil, nil, wire.HealthHealthy, "", wire.HealthHealthy},
		{"application xid is counted only", func(s *GPUSnapshot) { s.XIDs = []GPUXID{{Index: 0, UUID: testUUID, Code: 13}} }, nil, nil, wire.HealthHealthy, "", wire.HealthHealthy},
		{"contained memory error is the application's", func(s *GPUSnapshot) { s.XIDs = []GPUXID{{Index: 0, UUID: testUUID, Code: 94}} }, nil, nil, wire.HealthHealthy, "", wire.HealthHealthy},
		{"reset xid", func(s *GPUSnapshot) { s.XIDs = []GPUXID{{Index: 0, UUID: testUUID, Code: 79}} }, nil, nil, wire.HealthUnhealthy, "GPU 0 (" + testUUID + "): XID 79 (ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS): reboot needed", wire.HealthUnhealthy},
		{"degrading xid", func(s *GPUSnapshot) { s.XIDs = []GPUXID{{Index: 0, UUID: testUUID, Code: 74}} }, nil, nil, wire.HealthDegraded, "XID 74 (NVLINK_ERROR)", wire.HealthDegraded},
		{"lost", func(s *GPUSnapshot) { s.Devices[0].Lost = true }, nil, nil, wire.HealthUnhealthy, "is lost", wire.HealthUnhealthy},
		{"ecc", func(s *GPUSnapshot) { s.Devices[0].ECCUncorrected = 3 }, nil, nil, wire.HealthDegraded, "3 uncorrectable ECC errors: reboot needed", wire.HealthDegraded},
		{"remap pending", func(s *GPUSnapshot) { s.Devices[0].RemapPending = true }, nil, nil, wire.HealthDegraded, "row remap pending", wire.HealthDegraded},
		{"ecc not read", func(s *GPUSnapshot) { s.Devices[0].ECCUncorrected, s.Devices[0].Has = 3, HasTemp }, nil, nil, wire.HealthHealthy, "", wire.HealthHealthy},
		{"no longer readable", nil, errors.New("nvml: unknown error"), nil, wire.HealthDegraded, "could be read and no longer can", ""},
		{"wedged", nil, ErrGPUWedged, nil, wire.HealthDegraded, "stale", ""},
		{"gone from the list", func(s *GPUSnapshot) { s.Devices = s.Devices[:0] }, nil, nil, wire.HealthDegraded, "no longer listed", ""},
		{"proc walk", func(*GPUSnapshot) {}, nil, errors.New("open /proc: too many files"), wire.HealthDegraded, "process collection failed", wire.HealthHealthy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHealthTracker()
			if got, _ := h.observe(t0, GPUSnapshot{Devices: []GPUDevice{nvmlDevice()}}, nil, nil); got != wire.Healthy {
				t.Fatalf("first tick %+v", got)
			}
			snap := GPUSnapshot{Devices: []GPUDevice{nvmlDevice()}}
			if tc.change != nil {
				tc.change(&snap)
			}
			got, gpus := h.observe(t0.Add(time.Second), snap, tc.gpuErr, tc.proc)
			if got.Status != tc.want || !strings.Contains(got.Reason, tc.reason) || (tc.want == wire.HealthHealthy) != (got.Reason == "") {
				t.Errorf("hive %+v, want %s with %q", got, tc.want, tc.reason)
			}
			if g, ok := gpus[testUUID]; (tc.gpu == "") == ok || g.Status != tc.gpu && tc.gpu != "" {
				t.Errorf("GPU %+v (listed %v), want %q", g, ok, tc.gpu)
			}
		})
	}
}

// A reset-class XID holds until a reset or a reboot (sticky.go); a
// degrading XID for the hold time only.
func TestXIDHolds(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	h := newHealthTracker()
	h.observe(t0, GPUSnapshot{Devices: []GPUDevice{nvmlDevice()}, XIDs: []GPUXID{{Index: 0, UUID: testUUID, Code: 74}}}, nil, nil)
	if got, _ := h.observe(t0.Add(xidHold-time.Second), GPUSnapshot{Devices: []GPUDevice{nvmlDevice()}}, nil, nil); got.Status != wire.HealthDegraded {
		t.Fatalf("within the hold: %+v", got)
	}
	if got, _ := h.observe(t0.Add(xidHold+time.Second), GPUSnapshot{Devices: []GPUDevice{nvmlDevice()}}, nil, nil); got != wire.Healthy {
		t.Fatalf("after the hold: %+v", got)
	}
	h.observe(t0, GPUSnapshot{Devices: []GPUDevice{nvmlDevice()}, XIDs: []GPUXID{{Index: 0, UUID: testUUID, Code: 48}}}, nil, nil)
	if got, _ := h.observe(t0.Add(24*time.Hour), GPUSnapshot{Devices: []GPUDevice{nvmlDevice()}}, nil, nil); got.Status != wire.HealthUnhealthy {
		t.Fatalf("a day after XID 48: %+v", got)
	}
}

// A slowdown degrades the GPU once it has held for most of the last
// minute, and clears the tick it stops; a power cap never does.
func TestSlowdownRule(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	h := newHealthTracker()
	tick := func(s int, reasons ...string) wire.HealthStatus {
		d := nvmlDevice()
		d.Throttle = reasons
		got, _ := h.observe(t0.Add(time.Duration(s)*time.Second), GPUSnapshot{Devices: []GPUDevice{d}}, nil, nil)
		return got
	}
	for s := 0; s < 30; s++ {
		if got := tick(s, "sw_power_cap", "hw_thermal_slowdown"); got != wire.Healthy {
			t.Fatalf("degraded after %d s of slowdown: %+v", s, got)
		}
	}
	first := tick(31, "hw_thermal_slowdown")
	if first.Status != wire.HealthDegraded || !strings.Contains(first.Reason, "hw_thermal_slowdown for over 50% of the last 1m0s") {
		t.Fatalf("after 31 s: %+v", first)
	}
	// A sustained slowdown is one health, not a new one each tick.
	for s := 32; s < 40; s++ {
		if got := tick(s, "hw_thermal_slowdown"); got != first {
			t.Fatalf("after %d s: %+v, was %+v", s, got, first)
		}
	}
	if got := tick(40); got != wire.Healthy {
		t.Fatalf("the slowdown stopped: %+v", got)
	}
	h = newHealthTracker()
	for s := 0; s < 90; s++ {
		if got := tick(s, "sw_power_cap"); got != wire.Healthy {
			t.Fatalf("a power cap is health: %+v", got)
		}
	}
}

// The worst verdict wins; reasons of the same severity are all named,
// and the most drastic of their actions is the one to take.
func TestWorstVerdict(t *testing.T) {
	got := worst([]verdict{{wire.HealthDegraded, "a", wire.ActionNone}, {wire.HealthHealthy, "", ""},
		{wire.HealthDegraded, "b", wire.ActionResetGPU}, {wire.HealthDegraded, "c", wire.ActionRestartApp}})
	if got.status != wire.HealthDegraded || got.reason != "a; b; c" || got.action != wire.ActionResetGPU {
		t.Fatalf("%+v", got)
	}
	if got := worst([]verdict{{wire.HealthDegraded, "a", wire.ActionHardwareInspection}, {wire.HealthUnhealthy, "c", wire.ActionReboot}}); got.status != wire.HealthUnhealthy || got.reason != "c" || got.action != wire.ActionReboot {
		t.Fatalf("%+v", got)
	}
}

// PCIe replays and NVLink errors degrade a GPU when they rise by their
// threshold within the window, and no longer once a window passes
// without a rise; docs/GPUS.md names both thresholds.
func TestLinkErrorRules(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	h := newHealthTracker()
	tick := func(s int, pcie, nvlink uint64) wire.HealthStatus {
		d := nvmlDevice()
		d.Has |= HasPCIe | HasNVLink
		d.PCIeReplays, d.NVLinkErrors = pcie, nvlink
		_, gpus := h.observe(t0.Add(time.Duration(s)*time.Second), GPUSnapshot{Devices: []GPUDevice{d}}, nil, nil)
		return gpus[testUUID]
	}
	tick(0, 1000, 50)
	if g := tick(30, 1000+pcieReplayRise-1, 50); g.Status != wire.HealthHealthy {
		t.Fatalf("below the threshold: %+v", g)
	}
	g := tick(40, 1000+pcieReplayRise, 50)
	if g.Status != wire.HealthDegraded || g.Action != wire.ActionHardwareInspection || !strings.Contains(g.Reason, "PCIe replays") {
		t.Fatalf("PCIe replays over the threshold: %+v", g)
	}
	if g2 := tick(41, 1000+pcieReplayRise+5, 50); g2 != g {
		t.Errorf("the reason changed with the count: %+v then %+v", g, g2)
	}
	if g := tick(120, 1000+pcieReplayRise+5, 50); g.Status != wire.HealthHealthy {
		t.Fatalf("a window without a rise: %+v", g)
	}
	if g := tick(130, 1000+pcieReplayRise+5, 50+nvlinkErrorRise); g.Status != wire.HealthDegraded || g.Action != wire.ActionResetGPU {
		t.Fatalf("NVLink errors over the threshold: %+v", g)
	}
	if g := tick(131, 0, 0); g.Status != wire.HealthHealthy {
		t.Fatalf("counters reset by a GPU reset: %+v", g)
	}
	doc, err := os.ReadFile("../../docs/GPUS.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{fmt.Sprintf("%d or more PCIe replays in %v", pcieReplayRise, linkWindow),
		fmt.Sprintf("%d or more NVLink replay and recovery errors in %v", nvlinkErrorRise, linkWindow)} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("docs/GPUS.md does not say %q", want)
		}
	}
}
