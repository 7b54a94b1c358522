package capabilities

import (
	"bytes"
	"context"
	"errors"

	"github.com/rbee/hive/internal/nvsmi"
)

// GPU is one detected GPU.
type GPU = nvsmi.Cap

// Detector lists the host's GPUs. A host without GPUs returns nil, nil.
type Detector interface {
	DetectGPUs(ctx context.Context) ([]GPU, error)
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
