package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
)

// SMI reads GPUs with two nvidia-smi queries per tick, whatever the number
// of workers: one per GPU, one for every compute process.
type SMI struct {
	// Path is the nvidia-smi binary; "" looks it up in PATH.
	Path string
}

var _ GPUSource = (*SMI)(nil)

// Name implements GPUSource.
func (s *SMI) Name() string { return "nvidia-smi" }

// Sample implements GPUSource. A missing binary is ErrNoGPU.
func (s *SMI) Sample(ctx context.Context) (GPUSnapshot, error) {
	path := s.Path
	if path == "" {
		p, err := exec.LookPath("nvidia-smi")
		if err != nil {
			return GPUSnapshot{}, fmt.Errorf("%w: %v", ErrNoGPU, err)
		}
		path = p
	}
	gpuOut, err := runSMI(ctx, path, smiGPUArgs)
	if err != nil {
		return GPUSnapshot{}, err
	}
	devs, err := ParseGPUs(bytes.NewReader(gpuOut))
	if err != nil {
		return GPUSnapshot{}, err
	}
	if len(devs) == 0 {
		return GPUSnapshot{}, ErrNoGPU
	}
	appsOut, err := runSMI(ctx, path, smiAppsArgs)
	if err != nil {
		return GPUSnapshot{Devices: devs}, err
	}
	procs, err := ParseApps(bytes.NewReader(appsOut))
	return GPUSnapshot{Devices: devs, Procs: procs}, err
}

func runSMI(ctx context.Context, path string, args []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) || errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %v", ErrNoGPU, err)
		}
		return nil, fmt.Errorf("nvidia-smi %s: %w: %s", args[0], err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
