package jobs

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/rbee/hive/internal/workerproc"
)

// Config configures the jobs module.
type Config struct {
	HiveID    string
	QueenURL  string // passed to spawned workers
	WorkerDir string // llm-worker-rbee-<type> binaries
	LogDir    string // per-worker log files
	ModelDir  string
	// CgroupRoot is the rbee.slice tree spawned workers are placed in when
	// it is on a writable cgroup v2 file system; "" turns placement off.
	CgroupRoot string
	// WorkerMatch recognises worker processes (list, get, delete) besides
	// the ones this hive spawned, matched on WorkerMatchOn; "" means only
	// spawned workers are workers.
	WorkerMatch   string
	WorkerMatchOn string
	// MaxJobs bounds jobs running at once; MaxWorkers the live workers
	// this hive spawned (spawns in progress included).
	MaxJobs    int
	MaxWorkers int
	// Retention is how long a finished job stays streamable; MaxRetained
	// and MaxRetainedBytes bound finished jobs kept, the oldest going
	// first.
	Retention        time.Duration
	MaxRetained      int
	MaxRetainedBytes int64
	// MaxEvents and MaxJobBytes bound the narration kept per job for
	// replay, so that a replay always fits one NATS message.
	MaxEvents   int
	MaxJobBytes int
	// HealthTimeout bounds a spawn's wait for the worker's health.
	HealthTimeout time.Duration
	// HealthPath is what a spawn asks of its worker, as the collector's
	// probes do (workers.health-path); NoHealthPath waits for the port to
	// take a connection instead.
	HealthPath string
	// MinFreeVRAMMB is the GPU memory a GPU worker's spawn must find free
	// on the GPU it names (0: not checked); less is refused (409).
	MinFreeVRAMMB uint64
	// StopGrace is the wait between SIGTERM and SIGKILL; ShutdownGrace
	// replaces it while the hive shuts down, so that a worker ignoring
	// SIGTERM is killed within the shutdown budget.
	StopGrace     time.Duration
	ShutdownGrace time.Duration
	// StopWorkersOnExit stops spawned workers when Run returns.
	StopWorkersOnExit bool
	// StateDir holds the state file of the workers this hive spawned
	// (workers.json), read at start to take them back; "" is
	// <WorkerDir>/.hive-state, "-" keeps no state.
	StateDir string
	// LogCommand starts the writer of a spawned worker's log, which reads
	// the worker's output on its stdin and keeps the log within
	// MaxLogBytes as it writes (cmd/hive: the hive's own `worker-log`,
	// with --file and --max-bytes appended). Empty: the worker writes
	// its log file itself, bounded only by the periodic check.
	LogCommand []string
	// MaxLogBytes bounds each spawned worker's log: past it the log is
	// copied to <log>.1 and truncated (checked every few seconds).
	MaxLogBytes int64
	// CheckPause is the pause between hive_check steps.
	CheckPause time.Duration
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// NoHealthPath is HealthPath for workers probed for nothing (the
// collector's probes off): a spawn waits for the worker's port.
const NoHealthPath = "-"

// DefaultConfig is the jobs module as the hive runs it by default. The
// directories are under ~/.cache/rbee, as the original's (a leading ~/ is
// the caller's to expand).
func DefaultConfig() Config {
	return Config{
		WorkerDir:        "~/.cache/rbee/workers",
		LogDir:           "~/.cache/rbee/logs",
		ModelDir:         "~/.cache/rbee/models",
		CgroupRoot:       workerproc.DefaultCgroupRoot,
		WorkerMatch:      workerproc.DefaultPattern,
		WorkerMatchOn:    workerproc.OnExe,
		MaxJobs:          64,
		MaxWorkers:       32,
		Retention:        10 * time.Minute,
		MaxRetained:      1000,
		MaxRetainedBytes: 64 << 20,
		MaxEvents:        1000,
		MaxJobBytes:      DefaultMaxJobBytes,
		HealthTimeout:    60 * time.Second,
		HealthPath:       "/health",
		MinFreeVRAMMB:    1024,
		StopGrace:        5 * time.Second,
		ShutdownGrace:    time.Second,
		MaxLogBytes:      64 << 20,
		CheckPause:       50 * time.Millisecond,
	}
}

// Validate reports every setting the module cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.WorkerDir == "" || c.ModelDir == "" || c.LogDir == "" {
		errs = append(errs, errors.New("jobs: worker, log and model directories are required"))
	}
	for name, v := range map[string]int{"max jobs": c.MaxJobs, "max workers": c.MaxWorkers, "max retained jobs": c.MaxRetained,
		"max events": c.MaxEvents, "max job bytes": c.MaxJobBytes} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("jobs: %s %d must be at least 1", name, v))
		}
	}
	if c.MaxRetainedBytes < 1 {
		errs = append(errs, fmt.Errorf("jobs: max retained bytes %d must be at least 1", c.MaxRetainedBytes))
	}
	if c.Retention < 0 || c.StopGrace < 0 || c.ShutdownGrace < 0 || c.HealthTimeout < 0 || c.CheckPause < 0 {
		errs = append(errs, errors.New("jobs: durations must not be negative"))
	}
	if _, err := workerproc.NewMatcher(c.WorkerMatch, c.WorkerMatchOn); err != nil {
		errs = append(errs, fmt.Errorf("jobs: %w", err))
	}
	return errors.Join(errs...)
}

// statePath is the state file, "" for none.
func (c Config) statePath() string {
	switch c.StateDir {
	case "-":
		return ""
	case "":
		if c.WorkerDir == "" {
			return ""
		}
		return filepath.Join(c.WorkerDir, ".hive-state", "workers.json")
	}
	return filepath.Join(c.StateDir, "workers.json")
}
