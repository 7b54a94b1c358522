package collector

import (
	"errors"
	"fmt"
	"time"

	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/workerproc"
)

// Config configures the collector.
type Config struct {
	// Hive is the static part of hive_info; OperationalStatus is managed
	// by the collector.
	Hive     wire.HiveInfo
	Interval time.Duration
	// WorkerMatch is the pattern of worker processes, matched on
	// WorkerMatchOn (workerproc.OnExe by default); "" turns the pattern
	// source off.
	WorkerMatch   string
	WorkerMatchOn string
	// CgroupRoot is the rbee.slice tree; "" turns the cgroup source off.
	CgroupRoot string
	// GPU reads GPU state; nil means no GPU.
	GPU GPUSource
	// Readiness is how workers' health endpoints are probed.
	Readiness ReadinessConfig
	// Engine is how workers' engines are read for their load.
	Engine EngineConfig
	// Kmsg is the kernel log read for the driver's Xid lines, which name
	// the process to blame and the GPU's bus id; "" reads none.
	Kmsg string
	// BootIDFile names this boot; HealthState is the file that keeps a
	// GPU's reset- and reboot-class Xids across restarts of the hive,
	// until a reboot ("" keeps none).
	BootIDFile  string
	HealthState string
	// Checks are conditions of the hive the collector does not see itself
	// (the hub store's disk): each returns why the hive is degraded, or
	// "". cmd/ hands them in; each must return at once.
	Checks []func() string
}

// MinInterval is the shortest tick the collector accepts.
const MinInterval = 10 * time.Millisecond

// DefaultConfig is the original daemon's collection: one tick a second,
// rbee workers by executable name, the rbee.slice cgroup tree.
func DefaultConfig() Config {
	return Config{
		Interval:      time.Second,
		WorkerMatch:   workerproc.DefaultPattern,
		WorkerMatchOn: workerproc.OnExe,
		CgroupRoot:    workerproc.DefaultCgroupRoot,
		Readiness:     ReadinessConfig{Path: "/health", Timeout: 500 * time.Millisecond, UnresponsiveAfter: 10 * time.Second},
		Engine:        DefaultEngineConfig(),
		Kmsg:          "/dev/kmsg",
		BootIDFile:    "/proc/sys/kernel/random/boot_id",
	}
}

// Validate reports every setting the collector cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.Interval < MinInterval {
		errs = append(errs, fmt.Errorf("collector: interval %v too short (min %v)", c.Interval, MinInterval))
	}
	if c.Hive.ID == "" {
		errs = append(errs, errors.New("collector: empty hive id"))
	}
	if r := c.Readiness; r.Path != "" && (r.Path[0] != '/' || r.Timeout <= 0 || r.UnresponsiveAfter < 0) {
		errs = append(errs, fmt.Errorf("collector: health probe path %q must start with /, its timeout %v be positive", r.Path, r.Timeout))
	}
	if e := c.Engine; e.Interval != 0 && (e.Interval < MinEngineInterval || e.Timeout <= 0 || e.MaxBytes < 4<<10 || e.StallAfter <= 0 || e.Push.Requests < 0 || e.Push.Ratio < 0) {
		errs = append(errs, fmt.Errorf("collector: engine reads every %v (min %v, or 0 for none) with a timeout %v (positive), pages up to %d bytes (min 4096), stall after %v (positive)",
			e.Interval, MinEngineInterval, e.Timeout, e.MaxBytes, e.StallAfter))
	}
	if _, err := workerproc.NewMatcher(c.WorkerMatch, c.WorkerMatchOn); err != nil {
		errs = append(errs, fmt.Errorf("collector: %w", err))
	}
	return errors.Join(errs...)
}
