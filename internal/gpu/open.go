package gpu

import (
	"fmt"
	"log/slog"

	"github.com/rbee/hive/internal/nvml"
	"github.com/rbee/hive/internal/nvsmi"
)

// Open returns the reader a --gpu-source value names: auto (NVML in
// process where libnvidia-ml.so.1 loads, else nvidia-smi), nvml, smi,
// smi-device (the device mean, one nvidia-smi run less per tick), none,
// replay:<dir>. nvmlLib is the library to load ("" is the loader's).
// An NVML reader lives as long as the process.
func Open(source, nvmlLib string, log *slog.Logger) (Source, error) {
	if source == "auto" || source == "nvml" {
		r, err := nvml.Open(nvmlLib)
		if err == nil {
			info := r.Info()
			log.Info("GPUs read through NVML", "gpus", len(info.GPUs), "driver", info.Driver, "cuda", info.CUDA)
			return NVML{Reader: r}, nil
		}
		if source == "nvml" {
			return nil, fmt.Errorf("--gpu-source nvml: %w", err)
		}
		log.Info("NVML not used: GPUs read with nvidia-smi where it runs", "reason", err.Error())
	}
	r, deviceOnly, err := Runner(source)
	if err != nil {
		return nil, fmt.Errorf("--gpu-source: %w", err)
	}
	src := FromRunner(r)
	if smi, ok := src.(*SMI); ok {
		smi.DeviceUtil = deviceOnly
	}
	return src, nil
}

// Runner is the nvidia-smi reader a --gpu-source value names (auto and
// nvml fall back to nvidia-smi), and whether it reads the device mean
// alone. It checks a value without running anything.
func Runner(source string) (nvsmi.Runner, bool, error) {
	spec, deviceOnly := source, false
	switch spec {
	case "smi-device":
		spec, deviceOnly = "smi", true
	case "nvml":
		spec = "smi"
	}
	r, err := nvsmi.New(spec)
	if err != nil {
		return nil, false, fmt.Errorf("%w (or nvml, smi-device)", err)
	}
	return r, deviceOnly, nil
}
