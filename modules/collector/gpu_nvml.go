package collector

import (
	"context"
	"errors"
	"fmt"

	"github.com/rbee/hive/internal/nvml"
)

// NVMLReader is what the collector needs of an NVML reader
// (internal/nvml): one reading of every GPU under ctx's deadline.
type NVMLReader interface {
	Sample(ctx context.Context) (nvml.Snapshot, error)
	Name() string
}

// NVML reads GPUs in process through NVML: no fork per tick, per-process
// utilisation, the health figures (temperature, power, throttle reasons,
// ECC, row remapping, XIDs).
type NVML struct {
	Reader NVMLReader
}

var _ GPUSource = NVML{}

// Name implements GPUSource.
func (n NVML) Name() string { return n.Reader.Name() }

// Sample implements GPUSource. A call past the deadline is ErrGPUWedged.
func (n NVML) Sample(ctx context.Context) (GPUSnapshot, error) {
	s, err := n.Reader.Sample(ctx)
	if errors.Is(err, nvml.ErrWedged) {
		return GPUSnapshot{}, fmt.Errorf("%w: %v", ErrGPUWedged, err)
	}
	if err != nil {
		return GPUSnapshot{}, err
	}
	if len(s.Devices) == 0 {
		return GPUSnapshot{}, ErrNoGPU
	}
	snap := GPUSnapshot{PerProcess: s.PerProcess}
	if !s.PerProcess {
		snap.Fallback = "NVML offers no per-process utilisation here (MIG, vGPU)"
	}
	snap.Devices = s.Devices
	for _, p := range s.Procs {
		snap.Procs = append(snap.Procs, GPUProc{PID: int32(p.PID), GPUUUID: p.UUID, UsedMiB: p.UsedMiB, SMPct: p.SMPct, Sampled: p.Sampled})
	}
	for _, x := range s.XIDs {
		snap.XIDs = append(snap.XIDs, GPUXID{Index: x.Index, UUID: x.UUID, Code: x.Code})
	}
	return snap, nil
}
