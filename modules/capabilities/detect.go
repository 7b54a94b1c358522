package capabilities

import (
	"bytes"
	"context"
	"errors"

	"github.com/rbee/hive/internal/nvml"
	"github.com/rbee/hive/internal/nvsmi"
)

// GPU is one detected GPU.
type GPU = nvsmi.Cap

// Detector lists the host's GPUs. A host without GPUs returns nil, nil.
type Detector interface {
	DetectGPUs(ctx context.Context) ([]GPU, error)
}

// Driver is a Detector that also knows the driver: the source's name and
// the driver and CUDA versions, for /capabilities.
type Driver interface {
	Driver() (source, driver, cuda string)
}

// NVMLInfo is what an NVML reader knows of the GPUs, read once at Open.
type NVMLInfo interface {
	Info() nvml.Info
}

// NVML detects GPUs from an NVML reader's description of them.
type NVML struct{ Reader NVMLInfo }

// DetectGPUs implements Detector.
func (n NVML) DetectGPUs(context.Context) ([]GPU, error) {
	var out []GPU
	for _, g := range n.Reader.Info().GPUs {
		out = append(out, GPU{Index: g.Index, Name: g.Name, MemTotalMiB: g.MemTotalMiB, ComputeCapability: g.ComputeCapability})
	}
	return out, nil
}

// Driver implements Driver.
func (n NVML) Driver() (source, driver, cuda string) {
	i := n.Reader.Info()
	return "nvml", i.Driver, i.CUDA
}

// Driver implements Driver: nvidia-smi's query names no versions here.
func (s SMI) Driver() (source, driver, cuda string) {
	if s.Runner == nil {
		return "nvidia-smi", "", ""
	}
	return s.Runner.Name(), "", ""
}

// SMI detects GPUs with nvidia-smi's capabilities query, or a replay of
// it. No GPU (nvsmi.ErrNoGPU) is an empty list, not an error.
type SMI struct {
	Runner nvsmi.Runner // nil is nvsmi.Exec{}
}

// DetectGPUs implements Detector.
func (s SMI) DetectGPUs(ctx context.Context) ([]GPU, error) {
	r := s.Runner
	if r == nil {
		r = nvsmi.Exec{}
	}
	out, err := r.Run(ctx, nvsmi.Caps)
	if errors.Is(err, nvsmi.ErrNoGPU) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return nvsmi.ParseCaps(bytes.NewReader(out))
}
