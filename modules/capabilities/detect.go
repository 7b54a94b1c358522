package capabilities

import (
	"context"

	"github.com/rbee/hive/internal/gpu"
	"github.com/rbee/hive/internal/nvsmi"
)

// GPU is one detected GPU.
type GPU = nvsmi.Cap

// Detector is what capabilities needs of the hive's GPU reader
// (internal/gpu): which GPUs there are and which driver runs them. A host
// without GPUs describes none.
type Detector interface {
	Describe(ctx context.Context) (gpu.Description, error)
}
