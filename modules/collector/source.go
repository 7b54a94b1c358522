package collector

import "context"

// Worker is one unit the Queen schedules on: a main process and the child
// processes folded into it. Sources find workers; the sampler measures them.
type Worker struct {
	// PIDs lists the main process first.
	PIDs     []int32
	Group    string
	Instance string
	// Model is the served model, "" when unknown.
	Model string
	// Port is where the worker serves (its --port, its cgroup's or its
	// announcement's instance), 0 for none: a worker without one is
	// "running", never probed (its instance is then its pid).
	Port int
}

// Source finds workers. Scan is called once per tick from the collector's
// goroutine and returns the full current set; a source with nothing to
// report returns nil, nil. A process that vanished since it was listed is
// the sampler's concern, not an error of the source.
type Source interface {
	Scan(ctx context.Context) ([]Worker, error)
	Name() string
}
