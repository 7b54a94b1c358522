package collector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rbee/hive/internal/workerproc"
	"github.com/shirou/gopsutil/v3/process"
)

// CgroupSource reports every non-empty cgroup Root/<group>/<instance> as a
// worker, with every process of the cgroup folded into it. A missing Root
// means no workers.
type CgroupSource struct {
	Root string
}

var _ Source = (*CgroupSource)(nil)

// Name implements Source.
func (s *CgroupSource) Name() string { return "cgroup" }

// Scan implements Source.
func (s *CgroupSource) Scan(ctx context.Context) ([]Worker, error) {
	groups, err := os.ReadDir(s.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.Root, err)
	}
	var out []Worker
	for _, g := range groups {
		if !g.IsDir() {
			continue
		}
		insts, err := os.ReadDir(filepath.Join(s.Root, g.Name()))
		if err != nil {
			continue
		}
		for _, in := range insts {
			if !in.IsDir() {
				continue
			}
			pids := readProcs(filepath.Join(s.Root, g.Name(), in.Name(), "cgroup.procs"))
			if len(pids) == 0 {
				continue // stale or empty group
			}
			w := Worker{PIDs: pids, Group: g.Name(), Instance: in.Name(), Port: portOf(in.Name())}
			if args, err := (&process.Process{Pid: pids[0]}).CmdlineSliceWithContext(ctx); err == nil {
				w.Model, _ = workerproc.Arg(args, "model")
			}
			out = append(out, w)
		}
	}
	return out, nil
}

func readProcs(path string) []int32 {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var pids []int32
	for _, f := range strings.Fields(string(b)) {
		if v, err := strconv.ParseInt(f, 10, 32); err == nil && v > 0 {
			pids = append(pids, int32(v))
		}
	}
	return pids
}
