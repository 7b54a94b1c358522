package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/rbee/hive/bus/wire"
)

// checkSource says which GPU source the hive reports in /capabilities and
// fails when it is not the one asked for with -source.
func (c *check) checkSource() {
	var caps struct {
		GPUSource     string `json:"gpu_source"`
		DriverVersion string `json:"driver_version"`
		CUDAVersion   string `json:"cuda_version"`
	}
	raw, err := c.get("/capabilities")
	if err == nil {
		err = json.Unmarshal(raw, &caps)
	}
	if err != nil {
		c.fail("gpu source", "%v", err)
		return
	}
	want := c.cfg.source
	c.source = caps.GPUSource
	ok := want == "auto" || strings.HasPrefix(caps.GPUSource, want)
	c.check("gpu source", ok, "/capabilities gpu_source %q (asked for %q), driver %q, CUDA %q", caps.GPUSource, want, caps.DriverVersion, caps.CUDAVersion)
}

// checkNode compares the event's node block with nvidia-smi read right
// after it: the card's total exactly, memory in use within 2 % (the two
// reads are a moment apart and PyTorch's allocator moves), and the hive's
// and the GPU's health healthy on a card that is.
func (c *check) checkNode(card card) {
	c.mu.Lock()
	var ev wire.TelemetryEvent
	err := json.Unmarshal(c.lastEv, &ev)
	c.mu.Unlock()
	if err != nil || len(ev.Node.GPUs) == 0 {
		c.fail("node", "no node GPU in the last event (%v)", err)
		return
	}
	g := ev.Node.GPUs[0]
	used, free, err := smiMemMiB()
	if err != nil {
		c.fail("node", "nvidia-smi: %v", err)
		return
	}
	// As nvidia-smi counts (the driver's reserved memory is not used):
	// within 1 MiB, the rounding of two reads of one figure.
	diff := float64(g.VRAMUsedMB) - float64(used)
	c.check("node vram", g.VRAMTotalMB == card.totalMiB && abs(diff) <= 1,
		"gpu %d %s: vram_used_mb %d / %d, nvidia-smi %d / %d MiB", g.Index, g.UUID, g.VRAMUsedMB, g.VRAMTotalMB, used, card.totalMiB)
	if g.VRAMFreeMB != nil {
		c.check("node free vram", abs(float64(*g.VRAMFreeMB)-float64(free)) <= 1, "vram_free_mb %d, nvidia-smi memory.free %d MiB", *g.VRAMFreeMB, free)
	} else {
		c.fail("node free vram", "no vram_free_mb (nvidia-smi's memory.free is %d MiB)", free)
	}
	if c.source == "nvml" {
		c.check("node reserved vram", g.VRAMReservedMB != nil, "vram_reserved_mb %s (NVML v2 memory info)", ptrText(g.VRAMReservedMB))
	}
	c.check("node uuid", g.UUID == card.uuid && g.Name == card.name, "uuid %q, name %q; nvidia-smi %q, %q", g.UUID, g.Name, card.uuid, card.name)
	c.check("node health", g.Health.Status == wire.HealthHealthy && ev.HiveInfo.HealthStatus.Status == wire.HealthHealthy,
		"gpu health %s %q, hive health %s %q", g.Health.Status, g.Health.Reason, ev.HiveInfo.HealthStatus.Status, ev.HiveInfo.HealthStatus.Reason)
	c.info("node", "%s", describeGPU(g))
	if c.source == "nvml" {
		c.check("node nvml", g.TempC != nil && g.PowerW != nil && g.PowerLimitW != nil && g.ECCUncorrected != nil,
			"NVML fills temperature, power, power limit and ECC: %s", describeGPU(g))
	}
}

func describeGPU(g wire.NodeGPU) string {
	s := fmt.Sprintf("util %.0f %%", float64(g.UtilPct))
	if g.TempC != nil {
		s += fmt.Sprintf(", %d °C", *g.TempC)
	}
	if g.PowerW != nil && g.PowerLimitW != nil {
		s += fmt.Sprintf(", %.0f / %.0f W", float64(*g.PowerW), float64(*g.PowerLimitW))
	}
	if g.ECCUncorrected != nil {
		s += ", ecc " + strconv.FormatUint(*g.ECCUncorrected, 10)
	}
	if len(g.Throttle) > 0 {
		s += ", throttle " + strings.Join(g.Throttle, ",")
	}
	return s
}

// smiMemMiB is memory.used and memory.free of the first GPU.
func smiMemMiB() (used, free uint64, err error) {
	out, _, err := smi("--query-gpu=memory.used,memory.free", "--format=csv,noheader,nounits")
	if err != nil {
		return 0, 0, fmt.Errorf("%v: %s", err, out)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	u, f, ok := strings.Cut(line, ", ")
	if !ok {
		return 0, 0, fmt.Errorf("unexpected %q", line)
	}
	if used, err = strconv.ParseUint(strings.TrimSpace(u), 10, 64); err == nil {
		free, err = strconv.ParseUint(strings.TrimSpace(f), 10, 64)
	}
	return used, free, err
}

// checkGPM checks Hopper's GPM figures (source nvml, compute capability
// 9 or newer): present, and while a bf16 matmul runs, SM-active and
// tensor-active as the H200 recorded them (93 %, 91 %), not the "a kernel
// ran" of util_pct.
func (c *check) checkGPM(card card, busy bool) {
	major, _, _ := strings.Cut(card.cc, ".")
	if n, _ := strconv.Atoi(major); c.source != "nvml" || n < 9 {
		c.info("gpm", "not checked: source %s, compute capability %s (GPM is Hopper's and NVML's)", c.source, card.cc)
		return
	}
	c.mu.Lock()
	var ev wire.TelemetryEvent
	err := json.Unmarshal(c.lastEv, &ev)
	c.mu.Unlock()
	if err != nil || len(ev.Node.GPUs) == 0 {
		c.fail("gpm", "no node GPU in the last event (%v)", err)
		return
	}
	g := ev.Node.GPUs[0]
	desc := fmt.Sprintf("sm_active %s, occupancy %s, tensor %s, dram_bw %s, fp16 %s, fp32 %s", ptrText(g.SMActivePct), ptrText(g.SMOccupancyPct),
		ptrText(g.TensorActivePct), ptrText(g.DRAMBWPct), ptrText(g.FP16ActivePct), ptrText(g.FP32ActivePct))
	ok := g.SMActivePct != nil && g.SMOccupancyPct != nil && g.TensorActivePct != nil && g.DRAMBWPct != nil
	if ok && busy {
		ok = *g.SMActivePct > 50 && *g.TensorActivePct > 30
		desc += " (a bf16 matmul runs: want SM > 50, tensor > 30)"
	}
	c.check("gpm", ok, "%s", desc)
}

func ptrText[T any](p *T) string {
	if p == nil {
		return "absent"
	}
	return fmt.Sprint(*p)
}
