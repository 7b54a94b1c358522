// Package gpu is the hive's one way to read its GPUs: NVML in process,
// nvidia-smi (or a replay of its output), or none. One Source serves the
// collector's tick (Sample) and /capabilities (Describe), with one NVML
// handle set or one nvidia-smi path between them; each consumer declares
// the part it uses.
package gpu

import (
	"context"
	"errors"

	"github.com/rbee/hive/internal/nvml"
	"github.com/rbee/hive/internal/nvsmi"
)

// ErrNoGPU means the host has no readable NVIDIA GPU.
var ErrNoGPU = nvsmi.ErrNoGPU

// ErrWedged means a driver call did not return within the caller's
// deadline: the reading is missing, not the GPU.
var ErrWedged = errors.New("GPU driver call did not return in time")

// Source reads the GPUs.
type Source interface {
	// Name is the --gpu-source value that picks it: nvml, smi,
	// smi-device, none, replay:<dir>.
	Name() string
	// Sample reads every GPU and the processes on them within ctx's
	// deadline: a wedged GPU must not stall the tick.
	Sample(ctx context.Context) (Snapshot, error)
	// Describe says which GPUs there are and which driver runs them.
	Describe(ctx context.Context) (Description, error)
}

// Description is what /capabilities says of the GPUs.
type Description struct {
	Source       string
	Driver, CUDA string // "" where the source does not know
	// Memory is NVML's memory call (v2, or v1 where the driver lacks it);
	// "" for other sources.
	Memory string
	GPUs   []nvsmi.Cap
}

// Snapshot is one reading of all GPUs and the processes on them.
type Snapshot struct {
	Devices []Device
	Procs   []Proc
	// XIDs are the XID errors the driver reported since the last
	// snapshot (NVML's event set; nvidia-smi has none).
	XIDs []XID
	// PerProcess is true when Procs carry the driver's per-process
	// utilisation; false, a worker's gpu_util_pct is the mean utilisation
	// of the devices it holds memory on.
	PerProcess bool
	// Fallback says why per-process utilisation is not in this snapshot
	// ("" when it is, or when nothing asked for it).
	Fallback string
}

// Device is one GPU as a source read it: NVML's description serves every
// source. Figures that only some sources read (nvidia-smi's query has
// neither temperature nor ECC; NVML has them all) are valid only where
// Has says so.
type Device = nvml.Device

// Figures says which optional figures a Device carries.
type Figures = nvml.Figures

// XID is one XID error of one GPU.
type XID struct {
	Index int
	UUID  string
	Code  uint64
}

// Proc is one process on one GPU.
type Proc struct {
	PID     int32
	GPUUUID string
	UsedMiB uint64
	// SMPct is the share of the last sample period the process ran
	// kernels on that GPU (0-100); -1 when unknown.
	SMPct float64
	// Sampled says the driver had a sample of the process in the period:
	// without one, SMPct 0 means unknown (time-slicing leaves the lighter
	// process without samples), not idle.
	Sampled bool
}

// None is the source of a host without GPUs.
type None struct{}

// Name implements Source.
func (None) Name() string { return "none" }

// Sample implements Source.
func (None) Sample(context.Context) (Snapshot, error) { return Snapshot{}, ErrNoGPU }

// Describe implements Source.
func (None) Describe(context.Context) (Description, error) { return Description{Source: "none"}, nil }

var _ Source = None{}
