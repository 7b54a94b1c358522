package collector

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/shirou/gopsutil/v3/process"
)

// procEntry is one process as /proc/<pid>/stat describes it, read once
// per tick.
type procEntry struct {
	pid        int32
	ppid       int32
	startTicks uint64  // since boot, in clock ticks: the identity with pid
	cpuSec     float64 // utime + stime
	args       []string
}

// procTable is the tick's one walk of /proc: every process with its
// parent, start time and CPU time from a single read of its stat file.
// Command lines are read only for processes not seen before (a pid with a
// new start time is a new process), so a steady host costs one stat read
// per process per tick.
type procTable struct {
	root    string // "/proc", or HOST_PROC
	procs   map[int32]*procEntry
	kids    map[int32][]int32
	cmdline map[int32]cachedArgs
	buf     []byte
}

type cachedArgs struct {
	startTicks uint64
	args       []string
}

func newProcTable() *procTable {
	root := os.Getenv("HOST_PROC") // gopsutil's convention for containers
	if root == "" {
		root = "/proc"
	}
	return &procTable{root: root, procs: map[int32]*procEntry{}, kids: map[int32][]int32{},
		cmdline: map[int32]cachedArgs{}, buf: make([]byte, 0, 1024)}
}

// refresh walks /proc. withArgs says whether command lines are needed
// (the pattern source is on).
func (t *procTable) refresh(ctx context.Context, withArgs bool) error {
	pids, err := process.PidsWithContext(ctx)
	if err != nil {
		return err
	}
	clear(t.procs)
	clear(t.kids)
	for _, pid := range pids {
		e, err := t.readStat(pid)
		if err != nil {
			continue // gone since listed, or a kernel thread we cannot read
		}
		if withArgs {
			if c, ok := t.cmdline[pid]; ok && c.startTicks == e.startTicks {
				e.args = c.args
			} else {
				e.args = t.readCmdline(pid)
				t.cmdline[pid] = cachedArgs{e.startTicks, e.args}
			}
		}
		t.procs[pid] = e
		t.kids[e.ppid] = append(t.kids[e.ppid], pid)
	}
	for pid := range t.cmdline {
		if _, ok := t.procs[pid]; !ok {
			delete(t.cmdline, pid)
		}
	}
	return nil
}

var errStat = errors.New("malformed stat")

// readStat parses /proc/<pid>/stat: the fields after the command name,
// which may itself hold spaces and parentheses.
func (t *procTable) readStat(pid int32) (*procEntry, error) {
	b, err := t.readFile(filepath.Join(t.root, strconv.Itoa(int(pid)), "stat"))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return nil, errStat
	}
	f := strings.Fields(string(b[i+2:]))
	// f[0] state, f[1] ppid, f[11] utime, f[12] stime, f[19] starttime
	if len(f) < 20 {
		return nil, errStat
	}
	ppid, err1 := strconv.ParseInt(f[1], 10, 32)
	ut, err2 := strconv.ParseUint(f[11], 10, 64)
	st, err3 := strconv.ParseUint(f[12], 10, 64)
	start, err4 := strconv.ParseUint(f[19], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	return &procEntry{pid: pid, ppid: int32(ppid), startTicks: start, cpuSec: float64(ut+st) / clockTicks}, nil
}

// clockTicks is USER_HZ, 100 on every Linux the hive runs on.
const clockTicks = 100

func (t *procTable) readCmdline(pid int32) []string {
	b, err := t.readFile(filepath.Join(t.root, strconv.Itoa(int(pid)), "cmdline"))
	if err != nil || len(b) == 0 {
		return nil // a kernel thread or a zombie
	}
	b = bytes.TrimRight(b, "\x00")
	parts := bytes.Split(b, []byte{0})
	args := make([]string, len(parts))
	for i, p := range parts {
		args[i] = string(p)
	}
	return args
}

// readFile reads a small /proc file into the table's buffer; the result is
// valid until the next call.
func (t *procTable) readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t.buf = t.buf[:0]
	for {
		if len(t.buf) == cap(t.buf) {
			t.buf = slices.Grow(t.buf, 1024)
		}
		n, err := f.Read(t.buf[len(t.buf):cap(t.buf)])
		t.buf = t.buf[:len(t.buf)+n]
		if errors.Is(err, io.EOF) {
			return t.buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// descendants appends every descendant of pid (children, theirs, ...) that
// skip does not claim, and marks them.
func (t *procTable) descendants(pid int32, out []int32, claim func(int32) bool) []int32 {
	stack := append([]int32(nil), t.kids[pid]...)
	for len(stack) > 0 && len(out) < 1<<16 { // bounded: a fork bomb cannot hang the tick
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if c == pid || !claim(c) {
			continue
		}
		out = append(out, c)
		stack = append(stack, t.kids[c]...)
	}
	return out
}
