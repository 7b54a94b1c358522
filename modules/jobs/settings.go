package jobs

import "github.com/rbee/hive/internal/settings"

// RegisterSettings declares the jobs module's settings, bound to c: where
// workers, their logs, models and the state live, and the bounds on jobs
// and workers. c's values are the defaults.
func (c *Config) RegisterSettings(s *settings.Set) {
	j := s.Group("jobs")
	j.String(&c.WorkerDir, "worker-dir", "worker-dir", "directory of worker binaries (llm-worker-rbee-<type>)")
	j.String(&c.LogDir, "worker-log-dir", "log-dir", "directory of the spawned workers' log files")
	j.String(&c.ModelDir, "model-dir", "model-dir", "model directory")
	j.String(&c.StateDir, "state-dir", "state-dir", "directory of the state file of spawned workers, taken back after a restart (default <worker-dir>/.hive-state; - for none)")
	j.Duration(&c.Retention, "job-retention", "retention", "how long finished jobs stay streamable")
	j.Bool(&c.StopWorkersOnExit, "stop-workers-on-exit", "stop-workers-on-exit", "stop the workers this hive spawned when it exits")

	lim := s.Group("limits")
	lim.Int(&c.MaxJobs, "max-jobs", "max-jobs", "jobs running at once; more get 503")
	lim.Int(&c.MaxWorkers, "max-workers", "max-workers", "live workers spawned by this hive; more spawns get 409")
	lim.Int(&c.MaxRetained, "max-retained-jobs", "max-retained-jobs", "finished jobs kept streamable at most (also bounded to 64 MiB of narration)",
		settings.FileOnly)
	lim.Int64(&c.MaxLogBytes, "max-log-bytes", "max-log-bytes", "a spawned worker's log at most, in bytes, bounded as it is written: past it the log becomes <log>.1 and a new one starts",
		settings.FileOnly)
	lim.Uint64(&c.MinFreeVRAMMB, "min-free-vram-mb", "min-free-vram-mb", "MiB a GPU worker's spawn must find free on the GPU it names, else 409; 0 = not checked",
		settings.FileOnly)
}
