package collector

import (
	"bytes"
	"context"
	"errors"

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

// GPUSnapshot is one reading of all GPUs and the compute processes on them.
type GPUSnapshot struct {
	Devices []GPUDevice
	Procs   []GPUProc
}

// GPUDevice and GPUProc are what nvidia-smi reports per GPU and per
// compute process.
type (
	GPUDevice = nvsmi.Device
	GPUProc   = nvsmi.App
)

// SMI reads GPUs with two nvidia-smi queries per tick, whatever the number
// of workers: one for every GPU, one for every compute process. Its runner
// is nvidia-smi itself or a replay of recorded output.
type SMI struct {
	Runner nvsmi.Runner
}

var _ GPUSource = (*SMI)(nil)

// NewGPUSource reads GPUs through r; nil or nvsmi.None is NoGPU.
func NewGPUSource(r nvsmi.Runner) GPUSource {
	if _, none := r.(nvsmi.None); r == nil || none {
		return NoGPU{}
	}
	return &SMI{Runner: r}
}

// Name implements GPUSource.
func (s *SMI) Name() string { return s.Runner.Name() }

// Sample implements GPUSource. No device is ErrNoGPU; no compute process
// (or no recording of them) is an empty list.
func (s *SMI) Sample(ctx context.Context) (GPUSnapshot, error) {
	out, err := s.Runner.Run(ctx, nvsmi.Devices)
	if err != nil {
		return GPUSnapshot{}, err
	}
	devs, err := nvsmi.ParseDevices(bytes.NewReader(out))
	if err != nil {
		return GPUSnapshot{}, err
	}
	if len(devs) == 0 {
		return GPUSnapshot{}, ErrNoGPU
	}
	out, err = s.Runner.Run(ctx, nvsmi.Apps)
	if errors.Is(err, nvsmi.ErrNoGPU) {
		return GPUSnapshot{Devices: devs}, nil
	}
	if err != nil {
		return GPUSnapshot{Devices: devs}, err
	}
	procs, err := nvsmi.ParseApps(bytes.NewReader(out))
	return GPUSnapshot{Devices: devs, Procs: procs}, err
}

// NoGPU is the source for hosts without GPUs.
type NoGPU struct{}

// Sample implements GPUSource.
func (NoGPU) Sample(context.Context) (GPUSnapshot, error) { return GPUSnapshot{}, ErrNoGPU }

// Name implements GPUSource.
func (NoGPU) Name() string { return "none" }

var _ GPUSource = NoGPU{}
