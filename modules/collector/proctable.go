package collector

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"github.com/rbee/hive/internal/procfs"
)

// procEntry is one process as /proc/<pid>/stat describes it, read once
// per tick.
type procEntry struct {
	pid        int32
	ppid       int32
	startTicks uint64  // since boot, in clock ticks: the identity with pid
	comm       string  // the program's name; changes on exec
	cpuSec     float64 // utime + stime
	rssPages   uint64  // resident set, in pages (what statm's second field says)
	kthread    bool    // a kernel thread: its command line is empty for good
	args       []string
	seen       uint64 // the table's tick of the last reading
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
	files   *procFiles
	pids    []int32
	buf     []byte
	tick    uint64
	// cut counts command lines longer than maxCmdline, kept cut.
	cut uint64
}

// maxCmdline bounds what is read and cached of one command line. Worker
// lines are well under 1 KiB (vLLM's longest are a few); a process with
// megabytes of arguments is matched and shown by its first 16 KiB, and
// the cache of a thousand such processes stays under 16 MiB.
const maxCmdline = 16 << 10

// cachedArgs is a command line and what it belongs to: the process (pid,
// start time) and the program it runs (comm). A fork starts with its
// parent's command line and keeps its start time across exec, so only
// comm tells that exec happened and the line must be read again.
type cachedArgs struct {
	startTicks uint64
	comm       string
	args       []string
}

func newProcTable() *procTable {
	root := os.Getenv("HOST_PROC") // gopsutil's convention for containers
	if root == "" {
		root = "/proc"
	}
	return &procTable{root: root, procs: map[int32]*procEntry{}, kids: map[int32][]int32{},
		cmdline: map[int32]cachedArgs{}, files: newProcFiles(root, 0), buf: make([]byte, 0, 1024)}
}

// keepOpen lets the table keep up to n /proc files open between ticks
// (procFiles); its owner must then close it.
func (t *procTable) keepOpen(n int) { t.files.holdMax = n }

// close closes the files the table keeps open.
func (t *procTable) close() { t.files.close() }

// refresh walks /proc. withArgs says whether command lines are needed
// (the pattern source is on).
func (t *procTable) refresh(ctx context.Context, withArgs bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	pids, err := t.files.pids(t.pids[:0])
	if err != nil {
		return err
	}
	t.pids = pids
	// Entries and child lists are reused from tick to tick: a steady host
	// allocates almost nothing here.
	t.tick++
	for k, v := range t.kids {
		t.kids[k] = v[:0]
	}
	for _, pid := range pids {
		e := t.procs[pid]
		if e == nil {
			e = &procEntry{}
		}
		if err := t.readStat(pid, e); err != nil {
			delete(t.procs, pid)
			t.files.drop(pid)
			continue // gone since listed, or a kernel thread we cannot read
		}
		e.seen = t.tick
		if withArgs {
			t.setArgs(pid, e)
		}
		t.procs[pid] = e
		t.kids[e.ppid] = append(t.kids[e.ppid], pid)
	}
	for pid, e := range t.procs {
		if e.seen != t.tick {
			delete(t.procs, pid)
			t.files.drop(pid)
		}
	}
	for k, v := range t.kids {
		if len(v) == 0 {
			delete(t.kids, k)
		}
	}
	for pid := range t.cmdline {
		if _, ok := t.procs[pid]; !ok {
			delete(t.cmdline, pid)
		}
	}
	return nil
}

// setArgs gives e its command line, read again only when the process's
// start time or name changed since it was cached.
func (t *procTable) setArgs(pid int32, e *procEntry) {
	if c, ok := t.cmdline[pid]; ok && c.startTicks == e.startTicks && c.comm == e.comm {
		e.args = c.args
		return
	}
	e.args = t.readCmdline(pid)
	// An empty line from a user process is a moment, not a state: exec
	// sets the new comm before the new image's arguments exist, and an
	// exiting process loses them. Cached, it would hide a worker caught
	// mid-exec for good.
	if len(e.args) > 0 || e.kthread {
		t.cmdline[pid] = cachedArgs{e.startTicks, e.comm, e.args}
	} else {
		delete(t.cmdline, pid)
	}
}

// readStat reads /proc/<pid>/stat from the kept file into e.
func (t *procTable) readStat(pid int32, e *procEntry) error {
	b, err := t.files.readStat(pid, t.buf[:0])
	if err != nil {
		return err
	}
	t.buf = b
	st, err := procfs.ParseStat(b)
	if err != nil {
		return err
	}
	comm := e.comm
	if string(st.Comm) != comm { // compared without allocating
		comm = string(st.Comm)
	}
	*e = procEntry{pid: pid, ppid: st.PPID, startTicks: st.StartTime, comm: comm, cpuSec: float64(st.UTime+st.STime) / procfs.ClockTicks,
		rssPages: st.RSS, kthread: st.Flags&procfs.PFKthread != 0, args: e.args}
	return nil
}

func (t *procTable) readCmdline(pid int32) []string {
	b, err := t.readFile(filepath.Join(t.root, strconv.Itoa(int(pid)), "cmdline"), maxCmdline+1)
	if err != nil || len(b) == 0 {
		return nil // a kernel thread or a zombie
	}
	if len(b) > maxCmdline {
		b = b[:maxCmdline]
		t.cut++
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
func (t *procTable) readFile(path string, limit int) ([]byte, error) {
	b, err := readProcFile(path, t.buf[:0], limit)
	if err != nil {
		return nil, err
	}
	t.buf = b
	return b, nil
}

// readProcFile appends the file at path to buf (its first limit bytes
// when limit > 0) with plain system
// calls: open, read until EOF, close. os.Open would also set the
// descriptor non-blocking and try to register it with the poller, three
// more calls per file that a /proc file never needs; at a tick over every
// process they were a quarter of the collector's CPU.
func readProcFile(path string, buf []byte, limit int) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 1024)
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
		if limit > 0 && len(buf) >= limit {
			return buf[:limit], nil
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
