package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Replay is the fake GPU source: it reads recorded nvidia-smi output from
// Dir on every Sample, so a test can rewrite the files between ticks.
//
//	Dir/query-gpu.csv           output of nvidia-smi with smiGPUArgs
//	Dir/query-compute-apps.csv  output of nvidia-smi with smiAppsArgs
//
// A missing or empty query-gpu.csv replays a host without GPUs.
type Replay struct {
	Dir string
}

var _ GPUSource = (*Replay)(nil)

// Name implements GPUSource.
func (r *Replay) Name() string { return "replay:" + r.Dir }

// Sample implements GPUSource.
func (r *Replay) Sample(context.Context) (GPUSnapshot, error) {
	gpus, err := os.ReadFile(filepath.Join(r.Dir, "query-gpu.csv"))
	if errors.Is(err, os.ErrNotExist) {
		return GPUSnapshot{}, ErrNoGPU
	}
	if err != nil {
		return GPUSnapshot{}, fmt.Errorf("replay: %w", err)
	}
	devs, err := ParseGPUs(bytes.NewReader(gpus))
	if err != nil {
		return GPUSnapshot{}, err
	}
	if len(devs) == 0 {
		return GPUSnapshot{}, ErrNoGPU
	}
	apps, err := os.ReadFile(filepath.Join(r.Dir, "query-compute-apps.csv"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return GPUSnapshot{Devices: devs}, fmt.Errorf("replay: %w", err)
	}
	procs, err := ParseApps(bytes.NewReader(apps))
	return GPUSnapshot{Devices: devs, Procs: procs}, err
}

// NewGPUSource builds a source from its flag form: "auto" or "smi" for
// nvidia-smi, "none", or "replay:<dir>".
func NewGPUSource(spec string) (GPUSource, error) {
	switch {
	case spec == "" || spec == "auto" || spec == "smi" || spec == "nvidia-smi":
		return &SMI{}, nil
	case spec == "none":
		return NoGPU{}, nil
	case len(spec) > len("replay:") && spec[:len("replay:")] == "replay:":
		return &Replay{Dir: spec[len("replay:"):]}, nil
	}
	return nil, fmt.Errorf("collector: unknown GPU source %q (want auto, smi, none or replay:<dir>)", spec)
}
