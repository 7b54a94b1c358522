package collector

import "github.com/rbee/hive/bus"

// gpuIndex joins a GPU snapshot to workers by pid.
type gpuIndex struct {
	byUUID map[string]GPUDevice
	byPID  map[int32][]GPUProc
}

func newGPUIndex(s GPUSnapshot) gpuIndex {
	ix := gpuIndex{byUUID: make(map[string]GPUDevice, len(s.Devices)), byPID: make(map[int32][]GPUProc, len(s.Procs))}
	for _, d := range s.Devices {
		ix.byUUID[d.UUID] = d
	}
	for _, p := range s.Procs {
		ix.byPID[p.PID] = append(ix.byPID[p.PID], p)
	}
	return ix
}

// apply fills the GPU fields of st from every process of w:
// vram_mb is the memory its processes hold, total_vram_mb the memory of the
// GPUs they are on, gpu_util_pct the mean utilisation of those GPUs (NVIDIA
// reports utilisation per device, not per process). A worker on no GPU
// reports zeros.
func (ix gpuIndex) apply(w Worker, st *bus.ProcessStats) {
	seen := make(map[string]bool)
	var used, total uint64
	var util float64
	var utilN int
	for _, pid := range w.PIDs {
		for _, p := range ix.byPID[pid] {
			used += p.UsedMiB
			if seen[p.GPUUUID] {
				continue
			}
			seen[p.GPUUUID] = true
			d, ok := ix.byUUID[p.GPUUUID]
			if !ok {
				continue
			}
			total += d.MemTotalMiB
			if d.UtilPct >= 0 {
				util += d.UtilPct
				utilN++
			}
		}
	}
	st.VRAMMB = used
	st.TotalVRAMMB = total
	if utilN > 0 {
		st.GPUUtilPct = bus.Round(util/float64(utilN), 1)
	}
}
