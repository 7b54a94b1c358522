package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
)

// errLowVRAM refuses a GPU worker's spawn on a GPU without
// Config.MinFreeVRAMMB free.
var errLowVRAM = &bus.ReplyError{Code: wire.CodeConflict, Msg: "not enough free GPU memory"}

// gpuWorkers are the worker types that run on the GPU op.Device names.
var gpuWorkers = map[string]bool{"cuda": true}

// checkVRAM refuses a GPU worker's spawn where the GPU it names has less
// than MinFreeVRAMMB free, as the next telemetry tick reads it, or is not
// on this hive. A hive that reads no GPU (no NVML, no nvidia-smi) and one
// whose source cannot tell free memory refuse nothing: they know nothing
// to refuse on.
func (m *Jobs) checkVRAM(ctx context.Context, op Operation) error {
	if op.Name != "worker_spawn" || !gpuWorkers[op.Worker] || m.cfg.MinFreeVRAMMB == 0 {
		return nil
	}
	gpus, err := m.nextGPUs(ctx)
	if err != nil || len(gpus) == 0 {
		return nil
	}
	for _, g := range gpus {
		if g.Index != int(op.Device) {
			continue
		}
		if g.VRAMFreeMB != nil && *g.VRAMFreeMB < m.cfg.MinFreeVRAMMB {
			return fmt.Errorf("%w: GPU %d has %d MiB free, less than the %d MiB a spawn must leave room for (limits.min-free-vram-mb)",
				errLowVRAM, g.Index, *g.VRAMFreeMB, m.cfg.MinFreeVRAMMB)
		}
		return nil
	}
	return fmt.Errorf("%w: GPU %d is not on this hive (it has %d)", errLowVRAM, op.Device, len(gpus))
}

// nextGPUs waits for the next telemetry event (at most 3 s) and returns
// its GPUs.
func (m *Jobs) nextGPUs(ctx context.Context) ([]wire.NodeGPU, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	data, err := m.nextTelemetry(ctx)
	if err != nil {
		return nil, err
	}
	var ev struct {
		Node struct {
			GPUs []wire.NodeGPU `json:"gpus"`
		} `json:"node"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, err
	}
	return ev.Node.GPUs, nil
}
