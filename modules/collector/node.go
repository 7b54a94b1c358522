package collector

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/text"
)

// nodeSampler reads the machine's CPU and memory once per tick from two
// small /proc files, kept open (procFile). CPU is the busy share of all
// cores between two ticks; the first tick's is the average since boot.
type nodeSampler struct {
	busy, total uint64 // the previous reading of /proc/stat, in clock ticks
	stat, mem   *procFile
	buf         []byte
}

func newNodeSampler(root string) *nodeSampler {
	return &nodeSampler{stat: newProcFile(filepath.Join(root, "stat")), mem: newProcFile(filepath.Join(root, "meminfo")),
		buf: make([]byte, 0, 4096)}
}

// sample reads the machine. On an error it returns what it could read:
// the node block is always sent, the error counted by the caller.
func (n *nodeSampler) sample() (wire.Node, error) {
	var node wire.Node
	var errs []error
	if busy, total, err := n.cpu(); err == nil {
		if total > n.total {
			node.CPUPct = wire.Round(float64(max(int64(busy-n.busy), 0))/float64(total-n.total)*100, 1)
		}
		n.busy, n.total = busy, total
	} else {
		errs = append(errs, fmt.Errorf("node cpu: %w", err))
	}
	if total, avail, err := n.memory(); err == nil {
		node.RAMTotalMB = total >> 20
		node.RAMUsedMB = (total - min(avail, total)) >> 20
	} else {
		errs = append(errs, fmt.Errorf("node memory: %w", err))
	}
	return node, errors.Join(errs...)
}

// cpu reads the first line of /proc/stat: "cpu user nice system idle
// iowait irq softirq steal guest guest_nice", in clock ticks. Guest time
// is part of user time already; idle and iowait are not busy.
func (n *nodeSampler) cpu() (busy, total uint64, err error) {
	b, err := n.stat.read(n.buf[:0])
	if err != nil {
		return 0, 0, err
	}
	n.buf = b
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return 0, 0, fmt.Errorf("%s: unexpected first line %q", n.stat.path, text.Truncate(string(line), 80))
	}
	var v [8]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(string(f[i+1]), 10, 64); err != nil {
			return 0, 0, fmt.Errorf("%s: field %d: %w", n.stat.path, i+1, err)
		}
	}
	for _, x := range v {
		total += x
	}
	return total - v[3] - v[4], total, nil
}

// memory reads MemTotal and MemAvailable from /proc/meminfo, in bytes. A
// kernel without MemAvailable (before 3.14) gets MemFree + Buffers +
// Cached, an estimate that counts unreclaimable cache as free.
func (n *nodeSampler) memory() (total, avail uint64, err error) {
	b, err := n.mem.read(n.buf[:0])
	if err != nil {
		return 0, 0, err
	}
	n.buf = b
	var kb = map[string]uint64{}
	for line := range bytes.Lines(b) {
		name, rest, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		switch k := string(name); k {
		case "MemTotal", "MemAvailable", "MemFree", "Buffers", "Cached":
			f := bytes.Fields(rest)
			if len(f) == 0 {
				continue
			}
			if v, err := strconv.ParseUint(string(f[0]), 10, 64); err == nil {
				kb[k] = v
			}
		}
	}
	total, ok := kb["MemTotal"]
	if !ok {
		return 0, 0, fmt.Errorf("%s: no MemTotal", n.mem.path)
	}
	if a, ok := kb["MemAvailable"]; ok {
		return total << 10, a << 10, nil
	}
	return total << 10, (kb["MemFree"] + kb["Buffers"] + kb["Cached"]) << 10, nil
}

// close closes the files kept open.
func (n *nodeSampler) close() {
	n.stat.close()
	n.mem.close()
}

// nodeGPUs is the node block's GPU list: each device of the snapshot with
// its health.
func nodeGPUs(snap GPUSnapshot, health map[string]wire.HealthStatus) []wire.NodeGPU {
	out := make([]wire.NodeGPU, 0, len(snap.Devices))
	rest := unattributed(snap)
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
		memFigures(&g, d)
		if r, ok := rest[d.UUID]; ok {
			g.UnattributedPct = pct(r)
		}
		if d.Has&HasGPM != 0 {
			m := d.GPM
			g.SMActivePct, g.SMOccupancyPct, g.TensorActivePct = pct(m.SMActivePct), pct(m.SMOccupancyPct), pct(m.TensorActivePct)
			g.DRAMBWPct, g.FP16ActivePct, g.FP32ActivePct = pct(m.DRAMBWPct), pct(m.FP16ActivePct), pct(m.FP32ActivePct)
		}
		out = append(out, g)
	}
	return out
}

// gpusOf is the node block's GPU list for a tick: the snapshot's, or,
// while a driver call hangs (no fresh figures), the last good reading's
// with each GPU marked stale, so that a wedged driver does not read as a
// machine without GPUs.
func (c *Collector) gpusOf(at time.Time, gpu gpuTick, health map[string]wire.HealthStatus) []wire.NodeGPU {
	if !errors.Is(gpu.err, ErrGPUWedged) {
		gpus := nodeGPUs(gpu.snap, health)
		if gpu.err == nil {
			c.lastGPUs, c.lastGPUAt = gpus, at
		}
		return gpus
	}
	stale := slices.Clone(c.lastGPUs)
	for i := range stale {
		if stale[i].Health.Status != wire.HealthUnhealthy {
			stale[i].Health = wire.HealthStatus{Status: wire.HealthDegraded,
				Reason: "stale: figures of " + c.lastGPUAt.UTC().Format(time.RFC3339) + ", a driver call did not return since"}
		}
	}
	return stale
}

// memFigures fills the memory figures a source read beyond used and total.
func memFigures(g *wire.NodeGPU, d GPUDevice) {
	if d.Has&HasFree != 0 {
		f := d.MemFreeMiB
		g.VRAMFreeMB = &f
	}
	if d.Has&HasReserved != 0 {
		r := d.MemReservedMiB
		g.VRAMReservedMB = &r
	}
}

// pct is a percentage as the wire carries it, to two decimals.
func pct(v float64) *wire.Float {
	f := wire.Round(v, 2)
	return &f
}
