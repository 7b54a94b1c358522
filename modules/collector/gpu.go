package collector

import (
	"context"

	"github.com/rbee/hive/internal/gpu"
	"github.com/rbee/hive/internal/nvml"
)

// ErrNoGPU means the host has no readable NVIDIA GPU. Workers then report
// zeros for every GPU field.
var ErrNoGPU = gpu.ErrNoGPU

// GPUSource is what the collector needs of the hive's GPU reader
// (internal/gpu): one reading of every GPU and the processes on them per
// tick, within ctx's deadline (a wedged GPU must not stall the tick).
type GPUSource interface {
	Sample(ctx context.Context) (GPUSnapshot, error)
	Name() string
}

// The GPU reader's types, as the collector names them.
type (
	GPUSnapshot = gpu.Snapshot
	GPUDevice   = gpu.Device
	GPUFigures  = gpu.Figures
	GPUXID      = gpu.XID
	GPUProc     = gpu.Proc
	// NoGPU is the source of a host without GPUs.
	NoGPU = gpu.None
)

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
	HasPCIe     = nvml.HasPCIe
	HasNVLink   = nvml.HasNVLink
)
