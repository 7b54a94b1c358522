package collector

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shirou/gopsutil/v3/process"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
)

// A process keeps its pid and start time across exec; its command line
// must still be read again (a fork starts with its parent's line, and a
// worker found in that instant would otherwise never match).
func TestProcTableRereadsArgsAfterExec(t *testing.T) {
	m := marker(t)
	p := exec.Command("sh", "-c", "read line; exec sleep 60", m)
	p.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := p.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
		_ = p.Wait()
	})
	defer stdin.Close()
	pid := int32(p.Process.Pid)
	tab := newProcTable()
	ctx := context.Background()
	if err := tab.refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	before := tab.procs[pid]
	if before == nil || !strings.Contains(strings.Join(before.args, " "), m) {
		t.Fatalf("before exec: %+v", before)
	}
	start := before.startTicks
	_, _ = stdin.Write([]byte("go\n")) // the shell execs sleep
	bustest.WaitFor(t, 5*time.Second, func() error {
		if err := tab.refresh(ctx, true); err != nil {
			return err
		}
		e := tab.procs[pid]
		if e == nil || e.startTicks != start {
			return fmt.Errorf("process %d: %+v", pid, e)
		}
		if got := strings.Join(e.args, " "); got != "sleep 60" {
			return fmt.Errorf("args after exec %q", got)
		}
		return nil
	})
}

// Without a pattern, a hive with no worker reads no /proc: many idle hives
// on one host would otherwise each walk every process every tick. The
// first announced worker starts the walk, which its descendants and its
// sample need.
func TestNoProcWalkWithoutWorkers(t *testing.T) {
	c, err := New(Config{Hive: wire.HiveInfo{ID: "idle"}, Interval: time.Second, GPU: NoGPU{}}, bustest.Start(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if got := c.collectSamples(ctx); len(got) != 0 {
			t.Fatalf("workers %+v", got)
		}
	}
	if c.table.tick != 0 {
		t.Fatalf("%d walks of /proc without a worker", c.table.tick)
	}
	c.announced.Started(wire.WorkerEvent{PID: os.Getpid(), Instance: "self"})
	if got := c.collectSamples(ctx); len(got) != 1 || c.table.tick != 1 {
		t.Fatalf("with a worker: %d workers, %d walks", len(got), c.table.tick)
	}
}

// The walk's stat gives RSS and the raw reader the I/O counters: the same
// figures statm and gopsutil give, without their reads.
func TestStatRSSAndRawIOMatchTheKernel(t *testing.T) {
	tb := newProcTable()
	if err := tb.refresh(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	pid := int32(os.Getpid())
	e := tb.procs[pid]
	if e == nil {
		t.Fatal("own process not in the table")
	}
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	var size, resident uint64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		t.Fatal(err)
	}
	if diff := int64(e.rssPages) - int64(resident); e.rssPages == 0 || diff > int64(resident)/10 || -diff > int64(resident)/10 {
		t.Errorf("stat rss %d pages, statm %d", e.rssPages, resident)
	}

	s := newSampler()
	s.table = tb
	p := &process.Process{Pid: pid}
	raw, err := s.ioCounters(context.Background(), p, true)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := p.IOCountersWithContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Read first, so never more than the later reference, and close to it.
	if raw.ReadBytes > ref.ReadBytes || raw.WriteBytes > ref.WriteBytes || ref.WriteBytes-raw.WriteBytes > 1<<20 || ref.ReadBytes-raw.ReadBytes > 1<<20 {
		t.Errorf("raw io %+v, gopsutil %+v", *raw, *ref)
	}
}

// exec gives a process its new comm before its new arguments exist; a
// walk in that instant reads an empty command line. The table reads it
// again next tick rather than keep the empty one (which would hide a
// worker caught mid-exec for good); a kernel thread's empty line is kept.
func TestProcTableRereadsAnEmptyCommandLine(t *testing.T) {
	root := t.TempDir()
	t.Setenv("HOST_PROC", root)
	writeProc := func(pid int, comm string, flags uint64, cmdline string) {
		t.Helper()
		dir := fmt.Sprintf("%s/%d", root, pid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Fields after the name: state ppid pgrp session tty tpgid flags
		// minflt cminflt majflt cmajflt utime stime cutime cstime priority
		// nice threads itrealvalue starttime vsize rss ...
		stat := fmt.Sprintf("%d (%s) S 1 %d %d 0 -1 %d 0 0 0 0 7 3 0 0 20 0 1 0 5000 1000000 250 0\n", pid, comm, pid, pid, flags)
		if err := os.WriteFile(dir+"/stat", []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dir+"/cmdline", []byte(cmdline), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeProc(4242, "sleep", 0x400000, "")
	writeProc(2, "kthreadd", 0x208040, "")
	tab := newProcTable()
	ctx := context.Background()
	if err := tab.refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	if e := tab.procs[4242]; e == nil || len(e.args) != 0 || e.kthread || e.rssPages != 250 || e.cpuSec != 0.1 {
		t.Fatalf("mid-exec process: %+v", e)
	}
	if e := tab.procs[2]; e == nil || !e.kthread {
		t.Fatalf("kernel thread: %+v", e)
	}

	writeProc(4242, "sleep", 0x400000, "sleep\x0060\x00")
	writeProc(2, "kthreadd", 0x208040, "not read again\x00")
	if err := tab.refresh(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tab.procs[4242].args, " "); got != "sleep 60" {
		t.Errorf("after exec finished: args %q, want %q", got, "sleep 60")
	}
	if got := tab.procs[2].args; len(got) != 0 {
		t.Errorf("kernel thread's command line read again: %q", got)
	}
}
