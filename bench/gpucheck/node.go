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
	used, err := smiUsedMiB()
	if err != nil {
		c.fail("node", "nvidia-smi: %v", err)
		return
	}
	diff := float64(g.VRAMUsedMB) - float64(used)
	c.check("node vram", g.VRAMTotalMB == card.totalMiB && abs(diff) <= 0.02*float64(max(used, 1)),
		"gpu %d %s: vram_used_mb %d / %d, nvidia-smi %d / %d MiB", g.Index, g.UUID, g.VRAMUsedMB, g.VRAMTotalMB, used, card.totalMiB)
	c.check("node uuid", g.UUID == card.uuid, "uuid %q, nvidia-smi %q", g.UUID, card.uuid)
	c.check("node health", g.Health.Status == wire.HealthHealthy && ev.HiveInfo.HealthStatus.Status == wire.HealthHealthy,
		"gpu health %s %q, hive health %s %q", g.Health.Status, g.Health.Reason, ev.HiveInfo.HealthStatus.Status, ev.HiveInfo.HealthStatus.Reason)
	c.info("node", "%s", describeGPU(g))
	if c.cfg.source == "nvml" {
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

// smiUsedMiB is memory.used of the first GPU.
func smiUsedMiB() (uint64, error) {
	out, _, err := smi("--query-gpu=memory.used", "--format=csv,noheader,nounits")
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strconv.ParseUint(strings.TrimSpace(line), 10, 64)
}
