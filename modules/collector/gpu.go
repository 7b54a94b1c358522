package collector

import (
	"context"

	"github.com/rbee/hive/internal/nvml"
	"github.com/rbee/hive/internal/nvsmi"
)

// ErrNoGPU means the host has no readable NVIDIA GPU. Workers then report
// zeros for every GPU field.
var ErrNoGPU = nvsmi.ErrNoGPU

// GPUSource reads GPU state for every process in one query per tick.
// Sample must honour ctx's deadline: a wedged GPU must not stall the tick.
type GPUSource interface {
	Sample(ctx context.Context) (GPUSnapshot, error)
	Name() string
}

// GPUSnapshot is one reading of all GPUs and the processes on them.
type GPUSnapshot struct {
	Devices []GPUDevice
	Procs   []GPUProc
	// XIDs are the XID errors the driver reported since the last
	// snapshot (NVML's event set; nvidia-smi has none).
	XIDs []GPUXID
	// PerProcess is true when Procs carry the driver's per-process
	// utilisation; false, a worker's gpu_util_pct is the mean utilisation
	// of the devices it holds memory on.
	PerProcess bool
	// Fallback says why per-process utilisation is not in this snapshot
	// ("" when it is, or when nothing asked for it).
	Fallback string
}

// GPUDevice is one GPU as a source read it: NVML's description serves
// every source. Figures that only some sources read (nvidia-smi's query
// here has neither temperature nor ECC; NVML has them all) are valid only
// where Has says so.
type GPUDevice = nvml.Device

// GPUFigures says which optional figures a GPUDevice carries.
type GPUFigures = nvml.Figures

// The optional figures of GPUDevice.
const (
	HasTemp     = nvml.HasTemp
	HasPower    = nvml.HasPower
	HasThrottle = nvml.HasThrottle
	HasECC      = nvml.HasECC
	HasRemap    = nvml.HasRemap
	HasReserved = nvml.HasReserved
	HasGPM      = nvml.HasGPM
	HasFree     = nvml.HasFree
)

// GPUXID is one XID error of one GPU.
type GPUXID struct {
	Index int
	UUID  string
	Code  uint64
}

// fromSMI is a device of nvidia-smi's query: no optional figures.
func fromSMI(d nvsmi.Device) GPUDevice {
	g := GPUDevice{Index: d.Index, UUID: d.UUID, Name: d.Name, UtilPct: d.UtilPct, MemTotalMiB: d.MemTotalMiB, MemUsedMiB: d.MemUsedMiB,
		MemFreeMiB: d.MemFreeMiB}
	if d.HasFree {
		g.Has |= HasFree
	}
	return g
}

// GPUProc is one process on one GPU.
type GPUProc struct {
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

// NoGPU is the source for hosts without GPUs.
type NoGPU struct{}

// Sample implements GPUSource.
func (NoGPU) Sample(context.Context) (GPUSnapshot, error) { return GPUSnapshot{}, ErrNoGPU }

// Name implements GPUSource.
func (NoGPU) Name() string { return "none" }

var _ GPUSource = NoGPU{}
