package gpu

import (
	"context"
	"errors"
	"fmt"

	"github.com/rbee/hive/internal/nvml"
	"github.com/rbee/hive/internal/nvsmi"
)

// NVMLReader is what this package needs of an NVML reader
// (internal/nvml): one reading of every GPU under ctx's deadline, and
// what it learnt of them at Open.
type NVMLReader interface {
	Sample(ctx context.Context) (nvml.Snapshot, error)
	Name() string
	Info() nvml.Info
}

// NVML reads GPUs in process through NVML: no fork per tick, per-process
// utilisation, the health figures (temperature, power, throttle reasons,
// ECC, row remapping, XIDs).
type NVML struct {
	Reader NVMLReader
}

var _ Source = NVML{}

// Name implements Source.
func (n NVML) Name() string { return n.Reader.Name() }

// Describe implements Source: what the reader learnt at Open.
func (n NVML) Describe(context.Context) (Description, error) {
	i := n.Reader.Info()
	d := Description{Source: "nvml", Driver: i.Driver, CUDA: i.CUDA, Memory: i.Memory}
	for _, g := range i.GPUs {
		d.GPUs = append(d.GPUs, nvsmi.Cap{Index: g.Index, Name: g.Name, MemTotalMiB: g.MemTotalMiB, ComputeCapability: g.ComputeCapability})
	}
	return d, nil
}

// Sample implements Source. A call past the deadline is ErrWedged.
func (n NVML) Sample(ctx context.Context) (Snapshot, error) {
	s, err := n.Reader.Sample(ctx)
	if errors.Is(err, nvml.ErrWedged) {
		return Snapshot{}, fmt.Errorf("%w: %v", ErrWedged, err)
	}
	if err != nil {
		return Snapshot{}, err
	}
	if len(s.Devices) == 0 {
		return Snapshot{}, ErrNoGPU
	}
	snap := Snapshot{PerProcess: s.PerProcess, Devices: s.Devices}
	if !s.PerProcess {
		snap.Fallback = "NVML offers no per-process utilisation here (MIG, vGPU)"
	}
	for _, p := range s.Procs {
		snap.Procs = append(snap.Procs, Proc{PID: int32(p.PID), GPUUUID: p.UUID, UsedMiB: p.UsedMiB, SMPct: p.SMPct, Sampled: p.Sampled})
	}
	for _, x := range s.XIDs {
		snap.XIDs = append(snap.XIDs, XID{Index: x.Index, UUID: x.UUID, Code: x.Code})
	}
	return snap, nil
}
