package collector

import (
	"context"
	"strings"
)

// Worker is one unit the Queen schedules on: a main process and the child
// processes folded into it. Sources find workers; the sampler measures them.
type Worker struct {
	// PIDs lists the main process first.
	PIDs     []int32
	Group    string
	Instance string
	// Model is the served model, "" when unknown.
	Model string
}

// Source finds workers. Scan is called once per tick from the collector's
// goroutine and returns the full current set; a source with nothing to
// report returns nil, nil. A process that vanished since it was listed is
// the sampler's concern, not an error of the source.
type Source interface {
	Scan(ctx context.Context) ([]Worker, error)
	Name() string
}

// flagValue returns the value of --name or --name=value in args.
func flagValue(args []string, name string) (string, bool) {
	long := "--" + name
	for i, a := range args {
		if a == long && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, long+"="); ok {
			return v, true
		}
	}
	return "", false
}
