package collector

import (
	"errors"

	"github.com/rbee/hive/bus/wire"
)

// noteGPUErr counts a failed GPU reading and logs when the GPU's error
// changes, not every tick.
func (c *Collector) noteGPUErr(err error) {
	if err != nil && !errors.Is(err, ErrNoGPU) {
		c.metrics.sampleErrors.Inc()
	}
	msg := ""
	switch {
	case errors.Is(err, ErrGPUWedged):
		msg = "wedged" // logged once, however the wait ended
	case err != nil:
		msg = err.Error()
	}
	if msg == c.gpuErr {
		return
	}
	c.gpuErr = msg
	switch {
	case errors.Is(err, ErrGPUWedged):
		c.metrics.gpuWedged.Inc()
		c.log.Warn("GPU driver call did not return in time: the ticks go on without fresh GPU figures", "gpu", c.cfg.GPU.Name(), "err", err)
	case errors.Is(err, ErrNoGPU):
		c.log.Info("no GPU readable: GPU fields are 0", "gpu", c.cfg.GPU.Name(), "reason", msg)
	case err != nil:
		c.log.Warn("GPU query failed: GPU fields are 0 until it recovers", "gpu", c.cfg.GPU.Name(), "err", err)
	default:
		c.log.Info("GPU query ok", "gpu", c.cfg.GPU.Name())
	}
}

// noteUtilSource logs where gpu_util_pct comes from when that changes,
// so an operator knows whether two workers on one GPU are told apart.
func (c *Collector) noteUtilSource(s GPUSnapshot) {
	src := "per process (" + c.cfg.GPU.Name() + ")"
	if !s.PerProcess {
		src = "device mean"
	}
	if src == c.utilSrc {
		return
	}
	c.utilSrc = src
	if s.PerProcess {
		c.log.Info("gpu_util_pct is per process", "source", c.cfg.GPU.Name())
		return
	}
	c.log.Info("gpu_util_pct is the mean utilisation of the worker's GPUs, shared by every process on them", "reason", s.Fallback)
}

// noteTrim counts an event that FitEvent trimmed and logs when trimming
// starts and stops, not every second.
func (c *Collector) noteTrim(omitted, workers int) {
	c.metrics.omitted.Set(float64(omitted))
	switch {
	case omitted > 0:
		c.metrics.trimmed.Inc()
		if !c.trimming {
			c.log.Warn("telemetry event over its size bound: workers with the highest PIDs left out",
				"workers", workers, "omitted", omitted, "bound_bytes", wire.MaxEventBytes)
		}
		c.trimming = true
	case c.trimming:
		c.log.Info("telemetry event within its size bound again", "workers", workers)
		c.trimming = false
	}
}
