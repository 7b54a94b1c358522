package collector

import (
	"slices"

	"github.com/rbee/hive/bus/wire"
)

// gpuIndex joins a GPU snapshot to workers by pid.
type gpuIndex struct {
	byUUID     map[string]GPUDevice
	byPID      map[int32][]GPUProc
	perProcess bool
}

func newGPUIndex(s GPUSnapshot) gpuIndex {
	ix := gpuIndex{byUUID: make(map[string]GPUDevice, len(s.Devices)), byPID: make(map[int32][]GPUProc, len(s.Procs)), perProcess: s.PerProcess}
	for _, d := range s.Devices {
		ix.byUUID[d.UUID] = d
	}
	for _, p := range s.Procs {
		ix.byPID[p.PID] = append(ix.byPID[p.PID], p)
	}
	return ix
}

// onGPU is what a worker's processes hold and used of one GPU.
type onGPU struct {
	util    float64
	sampled bool // a process of the worker had a sample on it
}

// apply fills the GPU fields of st from every process of w. vram_mb is
// the memory its processes hold; total_vram_mb the memory of the GPUs
// they are on; gpu_util_pct the mean, over those GPUs, of the worker's
// own utilisation of each (its processes' sampled SM figures summed, at
// most 100) where the driver gives per-process figures, else of each
// device's utilisation, whoever ran on it; gpu_util_source says which,
// and says no_sample where the driver had no sample of the worker on any
// of its GPUs (0 then means unknown). A worker on no GPU reports zeros
// and "none".
func (ix gpuIndex) apply(w Worker, st *wire.ProcessStats) {
	own := make(map[string]onGPU) // per GPU the worker is on
	var used uint64
	for _, pid := range w.PIDs {
		for _, p := range ix.byPID[pid] {
			used += p.UsedMiB
			o := own[p.GPUUUID]
			if p.Sampled {
				o.util += max(p.SMPct, 0)
				o.sampled = true
			}
			own[p.GPUUUID] = o
		}
	}
	var total uint64
	var util float64
	var utilN int
	st.GPUIndices = st.GPUIndices[:0]
	st.GPUUtilSource = wire.GPUNone
	for uuid, mine := range own {
		d, ok := ix.byUUID[uuid]
		if !ok {
			continue
		}
		st.GPUIndices = append(st.GPUIndices, d.Index)
		total += d.MemTotalMiB
		switch {
		case ix.perProcess && mine.sampled:
			util += min(mine.util, 100)
			utilN++
			st.GPUUtilSource = wire.GPUSampled
		case ix.perProcess:
			if st.GPUUtilSource == wire.GPUNone {
				st.GPUUtilSource = wire.GPUNoSample
			}
		case d.UtilPct >= 0:
			util += d.UtilPct
			utilN++
			st.GPUUtilSource = wire.GPUDevice
		}
	}
	slices.Sort(st.GPUIndices)
	st.VRAMMB = used
	st.TotalVRAMMB = total
	st.GPUUtilPct = 0
	if utilN > 0 {
		st.GPUUtilPct = wire.Round(util/float64(utilN), 1)
	}
}

// unattributed is, per GPU, the device's utilisation less what the
// sampled processes on it account for (never below 0); absent where the
// driver gives no per-process figures or no device utilisation.
func unattributed(s GPUSnapshot) map[string]float64 {
	if !s.PerProcess {
		return nil
	}
	out := make(map[string]float64, len(s.Devices))
	for _, d := range s.Devices {
		if d.UtilPct < 0 {
			continue
		}
		var sum float64
		for _, p := range s.Procs {
			if p.GPUUUID == d.UUID && p.Sampled {
				sum += max(p.SMPct, 0)
			}
		}
		out[d.UUID] = max(d.UtilPct-sum, 0)
	}
	return out
}
