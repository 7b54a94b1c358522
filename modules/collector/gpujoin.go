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

// apply fills the GPU fields of st from every process of w. vram_mb is
// the memory its processes hold; total_vram_mb the memory of the GPUs
// they are on; gpu_util_pct the mean, over those GPUs, of the worker's
// own utilisation of each (its processes' pmon SM figures summed, at most
// 100) when the driver gives per-process figures, else of each device's
// utilisation, whoever ran on it. A worker on no GPU reports zeros.
func (ix gpuIndex) apply(w Worker, st *wire.ProcessStats) {
	own := make(map[string]float64) // per GPU the worker is on
	var used uint64
	for _, pid := range w.PIDs {
		for _, p := range ix.byPID[pid] {
			used += p.UsedMiB
			own[p.GPUUUID] += max(p.SMPct, 0)
		}
	}
	var total uint64
	var util float64
	var utilN int
	st.GPUIndices = st.GPUIndices[:0]
	for uuid, mine := range own {
		d, ok := ix.byUUID[uuid]
		if !ok {
			continue
		}
		st.GPUIndices = append(st.GPUIndices, d.Index)
		total += d.MemTotalMiB
		switch {
		case ix.perProcess:
			util += min(mine, 100)
			utilN++
		case d.UtilPct >= 0:
			util += d.UtilPct
			utilN++
		}
	}
	slices.Sort(st.GPUIndices)
	st.VRAMMB = used
	st.TotalVRAMMB = total
	if utilN > 0 {
		st.GPUUtilPct = wire.Round(util/float64(utilN), 1)
	}
}
