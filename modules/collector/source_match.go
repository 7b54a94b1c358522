package collector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/rbee/hive/internal/workerproc"
)

// MatchSource finds workers with a workerproc.Matcher (by default a
// regular expression on the executable name). Group is "llm",
// instance the --port argument (else the pid), model the --model argument.
//
// A matching process whose parent also matches is folded into the parent's
// worker (a launcher and its child, tensor-parallel ranks) rather than
// reported twice.
type MatchSource struct {
	m atomic.Pointer[workerproc.Matcher] // replaced by SetPattern

	self  int32
	table *procTable
	// shared: the collector refreshes table once per tick for every use;
	// a MatchSource on its own refreshes it in Scan.
	shared bool
}

var _ Source = (*MatchSource)(nil)

// NewMatchSource compiles pattern, matched on workerproc.OnExe or
// OnCmdline.
func NewMatchSource(pattern, on string) (*MatchSource, error) {
	s := &MatchSource{self: int32(os.Getpid()), table: newProcTable()}
	if err := s.SetPattern(pattern, on); err != nil {
		return nil, err
	}
	return s, nil
}

// SetPattern compiles pattern (matched on workerproc.OnExe or OnCmdline)
// and uses it from the next Scan on (a reload).
func (s *MatchSource) SetPattern(pattern, on string) error {
	m, err := workerproc.NewMatcher(pattern, on)
	if err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	if m == nil {
		return fmt.Errorf("collector: empty worker match pattern")
	}
	s.m.Store(m)
	return nil
}

// Name implements Source.
func (s *MatchSource) Name() string { return "match" }

// Scan implements Source. A matching process whose parent also matches is
// folded into the parent's worker (the collector then adds every other
// descendant).
func (s *MatchSource) Scan(ctx context.Context) ([]Worker, error) {
	if !s.shared {
		if err := s.table.refresh(ctx, true); err != nil {
			return nil, fmt.Errorf("list pids: %w", err)
		}
	}
	t, m := s.table, s.m.Load()
	matches := func(pid int32) bool {
		e, ok := t.procs[pid]
		// The hive's own command line carries the pattern (--worker-match).
		return ok && pid != s.self && m.Match(e.args)
	}
	var roots []int32
	for pid := range t.procs {
		if !matches(pid) {
			continue
		}
		if p := t.procs[pid].ppid; p != pid && matches(p) {
			continue // folded into its matching parent
		}
		roots = append(roots, pid)
	}
	slices.Sort(roots)
	out := make([]Worker, 0, len(roots))
	for _, r := range roots {
		args := t.procs[r].args
		w := Worker{PIDs: []int32{r}, Group: "llm", Instance: strconv.Itoa(int(r))}
		if port, ok := workerproc.Arg(args, "port"); ok && port != "" {
			w.Instance, w.Port = port, portOf(port)
		}
		w.Model, _ = workerproc.Arg(args, "model")
		// Matching descendants belong to this worker, whoever else does not.
		w.PIDs = t.descendants(r, w.PIDs, matches)
		out = append(out, w)
	}
	return out, nil
}

// SetWorkerMatch replaces the worker pattern while the collector runs (a
// reload): the next tick matches with it. A collector started without a
// pattern has no /proc walk for one to use, and one started with a
// pattern cannot drop it: both need a restart.
func (c *Collector) SetWorkerMatch(pattern, on string) error {
	switch {
	case c.match == nil && pattern != "":
		return errors.New("collector: a worker pattern cannot be added to a hive started without one: restart it")
	case c.match != nil && pattern == "":
		return errors.New("collector: the worker pattern cannot be removed from a running hive: restart it")
	case c.match == nil:
		return nil
	}
	return c.match.SetPattern(pattern, on)
}
