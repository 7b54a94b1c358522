package collector

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/shirou/gopsutil/v3/process"

	"github.com/rbee/hive/bus"
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
	m    *workerproc.Matcher
	self int32
}

var _ Source = (*MatchSource)(nil)

// NewMatchSource compiles pattern, matched on workerproc.OnExe or
// OnCmdline.
func NewMatchSource(pattern, on string) (*MatchSource, error) {
	m, err := workerproc.NewMatcher(pattern, on)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	if m == nil {
		return nil, fmt.Errorf("collector: empty worker match pattern")
	}
	return &MatchSource{m: m, self: int32(os.Getpid())}, nil
}

// Name implements Source.
func (s *MatchSource) Name() string { return "match" }

type matched struct {
	pid, ppid int32
	args      []string
}

// Scan implements Source.
func (s *MatchSource) Scan(ctx context.Context) ([]Worker, error) {
	pids, err := process.PidsWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list pids: %w", err)
	}
	byPID := make(map[int32]*matched)
	var order []int32
	for _, pid := range pids {
		// The hive's own command line carries the pattern (--worker-match).
		if pid == s.self {
			continue
		}
		p := &process.Process{Pid: pid}
		args, err := p.CmdlineSliceWithContext(ctx)
		if err != nil || len(args) == 0 {
			continue // gone, a kernel thread or a zombie
		}
		if !s.m.Match(args) {
			continue
		}
		ppid, err := p.PpidWithContext(ctx)
		if err != nil {
			continue
		}
		byPID[pid] = &matched{pid: pid, ppid: ppid, args: args}
		order = append(order, pid)
	}
	root := func(pid int32) int32 {
		for i := 0; i < 64; i++ { // bounded: a pid cycle cannot happen, a race might
			m, ok := byPID[pid]
			if !ok {
				break
			}
			if _, parentMatches := byPID[m.ppid]; !parentMatches || m.ppid == pid {
				return pid
			}
			pid = m.ppid
		}
		return pid
	}
	workers := make(map[int32]*Worker)
	var out []int32
	for _, pid := range order {
		r := root(pid)
		w, ok := workers[r]
		if !ok {
			m := byPID[r]
			w = &Worker{PIDs: []int32{r}, Group: "llm", Instance: strconv.Itoa(int(r))}
			if port, ok := bus.WorkerArg(m.args, "port"); ok && port != "" {
				w.Instance = port
			}
			w.Model, _ = bus.WorkerArg(m.args, "model")
			workers[r] = w
			out = append(out, r)
		}
		if pid != r {
			w.PIDs = append(w.PIDs, pid)
		}
	}
	res := make([]Worker, 0, len(out))
	for _, r := range out {
		res = append(res, *workers[r])
	}
	return res, nil
}
