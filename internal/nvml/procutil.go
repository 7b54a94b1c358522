//go:build cgo

package nvml

import (
	"slices"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// utilWindow is what the reader keeps of one GPU's process samples
// between two readings: the newest sample seen on the device, and each
// process's newest one, which its next window starts from.
type utilWindow struct {
	newest uint64            // driver µs
	pids   map[uint32]uint64 // pid -> its newest sample used, driver µs
	read   uint64            // when the previous reading asked, µs
}

// share is a process's SM utilisation over one window.
type share struct {
	pct     float64
	sampled bool // the driver returned a sample of it in the window
}

// shares reads one GPU's per-process samples since the previous reading
// and averages each process's over the window, each sample weighted by
// the time it covers (since the process's sample before it, or the
// window's start). NVML keeps a buffer of samples, about six a second per
// busy process; the newest alone says little, and with two processes
// time-slicing one GPU the driver often has no sample at all for the
// lighter one in a second (nvidia-smi pmon prints "-" for it): that is
// not 0 %, so it is said (sampled false). ok is false where the driver
// offers no per-process figures (MIG, vGPU: NOT_SUPPORTED).
func (w *utilWindow) shares(dev gonvml.Device, pids []uint32, now time.Time) (map[uint32]share, bool) {
	nowUS := uint64(now.UnixMicro())
	if w.pids == nil {
		w.pids = map[uint32]uint64{}
		w.read = nowUS - uint64(time.Second/time.Microsecond)
		w.newest = w.read
	}
	samples, ret := dev.GetProcessUtilization(w.since(pids))
	// NOT_FOUND (and an empty SUCCESS) is "no sample since then".
	if ret != gonvml.SUCCESS && ret != gonvml.ERROR_NOT_FOUND {
		return nil, false
	}
	slices.SortFunc(samples, func(a, b gonvml.ProcessUtilizationSample) int {
		return cmpU64(a.TimeStamp, b.TimeStamp)
	})
	type acc struct{ sum, weight float64 }
	per := map[uint32]*acc{}
	for _, s := range samples {
		w.newest = max(w.newest, s.TimeStamp)
		prev, ok := w.pids[s.Pid]
		if !ok {
			prev = w.read
		}
		if s.TimeStamp <= prev {
			continue // used in an earlier window
		}
		weight := float64(s.TimeStamp - prev)
		a := per[s.Pid]
		if a == nil {
			a = &acc{}
			per[s.Pid] = a
		}
		a.sum += float64(min(s.SmUtil, 100)) * weight
		a.weight += weight
		w.pids[s.Pid] = s.TimeStamp
	}
	out := make(map[uint32]share, len(pids))
	for _, pid := range pids {
		if a := per[pid]; a != nil && a.weight > 0 {
			out[pid] = share{pct: a.sum / a.weight, sampled: true}
		} else {
			out[pid] = share{}
		}
	}
	// Forget processes that left the GPU.
	for pid := range w.pids {
		if !slices.Contains(pids, pid) {
			delete(w.pids, pid)
		}
	}
	w.read = nowUS
	return out, true
}

// since is the point to ask from: the oldest any current process is owed
// (a lighter process's sample may be stamped before another's newest
// one), but no more than 2 s before the last reading.
func (w *utilWindow) since(pids []uint32) uint64 {
	since := w.newest
	for _, pid := range pids {
		if ts, ok := w.pids[pid]; ok && ts < since {
			since = ts
		}
	}
	return max(since, w.read-uint64(2*time.Second/time.Microsecond))
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
