package collector

import "github.com/rbee/hive/internal/settings"

// RegisterSettings declares the collector's settings, bound to c: the
// tick, the cgroup tree, the workers' probes and their engines' reads.
// c's values are the defaults.
func (c *Config) RegisterSettings(s *settings.Set) {
	w := s.Group("workers")
	w.Duration(&c.Interval, "telemetry-interval", "telemetry-interval", "collector tick")
	w.String(&c.CgroupRoot, "cgroup-root", "cgroup-root", `cgroup v2 tree of workers (<group>/<instance>); "" = off`)
	w.String(&c.Readiness.Path, "worker-health-path", "health-path", `path probed on every worker with a port, at http://127.0.0.1:<port><path>, for its state; "" = no probes`,
		settings.FileOnly)
	w.Duration(&c.Readiness.UnresponsiveAfter, "worker-unresponsive-after", "unresponsive-after", "how long a worker that answered may fail its probes before it is unresponsive",
		settings.FileOnly)
	e := &c.Engine
	w.Duration(&e.Interval, "engine-interval", "engine-interval", "how often each worker's engine metrics (http://127.0.0.1:<port>/metrics) are read for its load; 0 = never (min 100ms)",
		settings.FileOnly)
	w.Duration(&e.Timeout, "engine-timeout", "engine-timeout", "deadline of one read of an engine's metrics", settings.FileOnly)
	w.Int64(&e.MaxBytes, "engine-max-bytes", "engine-max-bytes", "an engine's metrics page is read up to this many bytes (the rest is cut and counted)",
		settings.FileOnly)
	w.Duration(&e.StallAfter, "stall-after", "stall-after", "a worker whose engine has requests running and makes no progress this long is stalled",
		settings.FileOnly)
	w.String(&c.Kmsg, "kmsg-path", "kmsg-path", `the kernel log read for the GPU driver's Xid lines (the process to blame, the GPU's bus id); "" = none`,
		settings.FileOnly)
	w.String(&c.BootIDFile, "boot-id-file", "boot-id-file", "names this boot: a GPU's reset- and reboot-class Xids hold until it changes", settings.FileOnly)
	w.Var(&e.Push, "load-push-delta", "load-push-delta", `a change of a worker's queue or running requests by N requests or P % ("4,25%") is sent at once on hive.load and SSE ?events=load; "0" = never`,
		settings.FileOnly)
}
