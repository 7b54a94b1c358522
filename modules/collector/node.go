package collector

import (
	"context"
	"fmt"

	"github.com/shirou/gopsutil/v3/cpu"
	"github.com/shirou/gopsutil/v3/mem"

	"github.com/rbee/hive/bus/wire"
)

// nodeSampler reads the machine's CPU and memory once per tick (two small
// /proc files, through gopsutil). CPU is the busy share of all cores
// between two ticks; the first tick's is the average since boot.
type nodeSampler struct {
	busy, total float64 // the previous reading of /proc/stat, in seconds
}

// sample reads the machine. On an error it returns what it could read:
// the node block is always sent, the error counted by the caller.
func (n *nodeSampler) sample(ctx context.Context) (wire.Node, error) {
	var node wire.Node
	var errs []error
	if ts, err := cpu.TimesWithContext(ctx, false); err == nil && len(ts) == 1 {
		t := ts[0]
		total := t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
		busy := total - t.Idle - t.Iowait
		if dt := total - n.total; dt > 0 {
			node.CPUPct = wire.Round(max(busy-n.busy, 0)/dt*100, 1)
		}
		n.busy, n.total = busy, total
	} else {
		errs = append(errs, fmt.Errorf("node cpu: %v", err))
	}
	if vm, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		node.RAMTotalMB = vm.Total >> 20
		node.RAMUsedMB = (vm.Total - min(vm.Available, vm.Total)) >> 20
	} else {
		errs = append(errs, fmt.Errorf("node memory: %w", err))
	}
	if len(errs) > 0 {
		return node, errs[0]
	}
	return node, nil
}

// nodeGPUs is the node block's GPU list: each device of the snapshot with
// its health.
func nodeGPUs(snap GPUSnapshot, health map[string]wire.HealthStatus) []wire.NodeGPU {
	out := make([]wire.NodeGPU, 0, len(snap.Devices))
	for _, d := range snap.Devices {
		g := wire.NodeGPU{Index: d.Index, UUID: d.UUID, Name: d.Name, VRAMUsedMB: d.MemUsedMiB, VRAMTotalMB: d.MemTotalMiB,
			Health: health[d.UUID]}
		if d.UtilPct >= 0 {
			g.UtilPct = wire.Round(d.UtilPct, 1)
		}
		if g.Health.Status == "" {
			g.Health = wire.Healthy
		}
		if d.Has&HasTemp != 0 {
			t := d.TempC
			g.TempC = &t
		}
		if d.Has&HasPower != 0 {
			p, l := wire.Round(d.PowerW, 1), wire.Round(d.PowerLimitW, 1)
			g.PowerW, g.PowerLimitW = &p, &l
		}
		if d.Has&HasThrottle != 0 {
			g.Throttle = append([]string{}, d.Throttle...)
		}
		if d.Has&HasECC != 0 {
			e := d.ECCUncorrected
			g.ECCUncorrected = &e
		}
		out = append(out, g)
	}
	return out
}
