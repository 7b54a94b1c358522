package capabilities

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"time"

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

// MemoryInfo is a Detector that knows which memory info call it reads.
type MemoryInfo interface {
	MemoryInfo() string
}

// MemoryInfo implements MemoryInfo.
func (n NVML) MemoryInfo() string { return n.Reader.Info().Memory }

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

// Driver implements Driver: the versions from nvidia-smi's report (a
// replay without one has none).
func (s SMI) Driver() (source, driver, cuda string) {
	r := s.Runner
	if r == nil {
		r = nvsmi.Exec{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if out, err := r.Run(ctx, nvsmi.Q); err == nil {
		driver, cuda = nvsmi.ParseVersions(bytes.NewReader(out))
	}
	return cmp.Or(s.Source, r.Name()), driver, cuda
}

// SMI detects GPUs with nvidia-smi's capabilities query, or a replay of
// it. No GPU (nvsmi.ErrNoGPU) is an empty list, not an error.
type SMI struct {
	Runner nvsmi.Runner // nil is nvsmi.Exec{}
	// Source names the reader in /capabilities' gpu_source, as the
	// collector names it (smi-device); empty is the runner's name.
	Source string
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
