// Package capabilities detects the machine's devices (NVIDIA GPUs, then
// CPU-0 with its cores and RAM) and answers hive.capabilities.get.
package capabilities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v3/cpu"
	"github.com/shirou/gopsutil/v3/mem"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/gpu"
	"github.com/rbee/hive/internal/nvsmi"
)

// Capabilities is the module.
type Capabilities struct {
	cfg Config
	bus *bus.Bus
	log *slog.Logger

	mu     sync.Mutex
	cached *wire.Capabilities
	at     time.Time

	ready chan struct{}
}

// Ready is closed once Run answers requests.
func (c *Capabilities) Ready() <-chan struct{} { return c.ready }

// New validates cfg. It starts nothing.
func New(cfg Config, b *bus.Bus, log *slog.Logger) (*Capabilities, error) {
	if b == nil {
		return nil, errors.New("capabilities: nil bus")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	def := DefaultConfig()
	if cfg.Detector == nil {
		cfg.Detector = gpu.FromRunner(nvsmi.Exec{})
	}
	if cfg.MinRefresh == 0 {
		cfg.MinRefresh = def.MinRefresh
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = def.Timeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Capabilities{cfg: cfg, bus: b, log: log.With("module", "capabilities"), ready: make(chan struct{})}, nil
}

// Run answers requests until ctx ends, detecting the devices once
// right after it subscribed.
func (c *Capabilities) Run(ctx context.Context) error {
	nc, err := c.bus.Connect("capabilities")
	if err != nil {
		return err
	}
	defer nc.Close()
	sub, err := bus.Handle(nc, wire.SubjectCapabilitiesGet, func(wire.CapabilitiesRequest) (wire.Capabilities, error) {
		return c.Get(ctx), nil
	})
	if err != nil {
		return fmt.Errorf("capabilities: subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("capabilities: flush: %w", err)
	}
	close(c.ready)
	// Detect after subscribing: a request meanwhile waits for this first
	// detection (Get serialises) instead of finding no responder.
	caps := c.Get(ctx)
	c.log.Info("devices detected", "devices", len(caps.Devices))
	<-ctx.Done()
	return nil
}

// Get returns the devices, detecting again only when the cached answer is
// at least MinRefresh old: nvidia-smi is slow and the answer rarely changes.
func (c *Capabilities) Get(ctx context.Context) wire.Capabilities {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cached != nil && c.cfg.Now().Sub(c.at) < c.cfg.MinRefresh {
		return *c.cached
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	caps := c.detect(dctx)
	c.cached, c.at = &caps, c.cfg.Now()
	return caps
}

func (c *Capabilities) detect(ctx context.Context) wire.Capabilities {
	devices := []wire.Device{}
	desc, err := c.cfg.Detector.Describe(ctx)
	gpus := desc.GPUs
	if err != nil {
		c.log.Warn("GPU detection failed; reporting CPU only", "err", err)
	}
	for _, g := range gpus {
		vram := uint32(g.MemTotalMiB / 1024)
		cc := g.ComputeCapability
		devices = append(devices, wire.Device{
			ID: "GPU-" + strconv.Itoa(g.Index), Name: g.Name, DeviceType: "gpu", VRAMGB: &vram, ComputeCapability: &cc,
		})
	}
	cores, err := cpu.CountsWithContext(ctx, true)
	if err != nil || cores < 1 {
		cores = 1
	}
	var ramGB uint32
	if vm, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		ramGB = uint32(vm.Total >> 30)
	} else {
		c.log.Warn("memory size unreadable", "err", err)
	}
	devices = append(devices, wire.Device{
		ID: "CPU-0", Name: fmt.Sprintf("CPU (%d cores)", cores), DeviceType: "cpu", VRAMGB: &ramGB,
	})
	return wire.Capabilities{Devices: devices, GPUSource: desc.Source, DriverVersion: desc.Driver, CUDAVersion: desc.CUDA,
		GPUMemoryInfo: desc.Memory}
}
