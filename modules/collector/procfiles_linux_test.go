package collector

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// procFDs counts this process's descriptors open on /proc itself or on a
// /proc/<pid>/stat file.
func procFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory read's own descriptor, closed since
		}
		if target == "/proc" || strings.HasPrefix(target, "/proc/") && strings.HasSuffix(target, "/stat") {
			n++
		}
	}
	return n
}

// ownCPUTicks is this process's utime+stime as /proc says it now, read by
// path: the reference the kept descriptor must agree with.
func ownCPUTicks(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	return u + s
}

// A kept stat descriptor is read afresh each tick (the CPU time moves
// with the process's), a reaped process's descriptor is closed and its
// entry gone, no more than the bound is kept, and close leaves nothing
// open. The listing has every process the directory has.
func TestProcTableKeepsStatFilesOpen(t *testing.T) {
	tab := newProcTable()
	tab.keepOpen(8)
	if n := procFDs(t); n != 0 {
		t.Fatalf("%d /proc descriptors open before the table", n)
	}
	ctx := context.Background()

	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	pid := int32(child.Process.Pid)
	self := int32(os.Getpid())
	if err := tab.refresh(ctx, false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int32{1, self, pid} {
		if tab.procs[p] == nil {
			t.Fatalf("pid %d not listed (%d processes)", p, len(tab.procs))
		}
	}
	if held := len(tab.files.stat); held != 8 {
		t.Fatalf("%d stat files kept, want the bound 8 (%d processes)", held, len(tab.procs))
	}
	if got := procFDs(t); got != 9 { // eight stat files and the directory
		t.Fatalf("%d /proc descriptors open, want 9", got)
	}

	// This process's own entry, kept or not, follows its CPU time.
	tab.files.drop(self)
	tab.files.stat[self] = mustOpen(t, "/proc/self/stat")
	first := tab.procs[self].cpuSec
	for start := ownCPUTicks(t); ownCPUTicks(t) < start+2; {
		for i := range 1 << 20 {
			_ = strconv.Itoa(i)
		}
	}
	if err := tab.refresh(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := tab.procs[self].cpuSec; got <= first {
		t.Fatalf("own CPU time %v after burning CPU, was %v: the kept descriptor read stale data", got, first)
	}

	tab.files.drop(pid)
	tab.files.stat[pid] = mustOpen(t, "/proc/"+strconv.Itoa(int(pid))+"/stat")
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	if err := tab.refresh(ctx, false); err != nil {
		t.Fatal(err)
	}
	if tab.procs[pid] != nil {
		t.Fatalf("reaped child %d still in the table", pid)
	}
	if _, ok := tab.files.stat[pid]; ok {
		t.Fatalf("reaped child's stat descriptor still kept")
	}

	tab.close()
	if got := procFDs(t); got != 0 {
		t.Fatalf("%d /proc descriptors open after close", got)
	}
}

func mustOpen(t *testing.T, path string) int {
	t.Helper()
	fd, err := openRetry(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

func TestHeldFiles(t *testing.T) {
	for nofile, want := range map[uint64]int{0: 0, 1023: 0, 1024: 64, 4096: 256, 65536: MaxHeldFiles, 1 << 20: MaxHeldFiles} {
		if got := HeldFiles(nofile); got != want {
			t.Errorf("HeldFiles(%d) = %d, want %d", nofile, got, want)
		}
	}
}
