package collector

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/shirou/gopsutil/v3/mem"
)

// The node block from a /proc of known contents: CPU is the busy share
// between two readings of the kept-open stat file (which sees the file's
// new contents), memory is MemTotal less MemAvailable, or less free,
// buffers and cache on a kernel without MemAvailable; an unreadable CPU
// line is an error that still leaves memory read.
func TestNodeSamplerReadsProc(t *testing.T) {
	root := t.TempDir()
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("stat", "cpu  100 0 50 800 50 0 0 0 7 0\ncpu0 100 0 50 800 50 0 0 0 7 0\nintr 1 2 3\n")
	write("meminfo", "MemTotal:        2097152 kB\nMemFree:             100 kB\nMemAvailable:    1048576 kB\nBuffers:   5 kB\n")
	n := newNodeSampler(root)
	defer n.close()
	node, err := n.sample()
	if err != nil {
		t.Fatal(err)
	}
	if node.CPUPct != 15 || node.RAMTotalMB != 2048 || node.RAMUsedMB != 1024 {
		t.Fatalf("first reading %+v, want cpu 15 %% (since boot), 2048 MiB total, 1024 used", node)
	}

	write("stat", "cpu  400 0 150 1200 250 0 0 0 7 0\n") // +300 user, +100 system, +400 idle, +200 iowait
	write("meminfo", "MemTotal: 4194304 kB\nMemFree: 524288 kB\nBuffers: 0 kB\nCached: 524288 kB\n")
	if node, err = n.sample(); err != nil {
		t.Fatal(err)
	}
	if node.CPUPct != 40 || node.RAMTotalMB != 4096 || node.RAMUsedMB != 3072 {
		t.Fatalf("second reading %+v, want cpu 40 %%, 4096 MiB total, 3072 used", node)
	}

	write("stat", "garbage\n")
	node, err = n.sample()
	if err == nil || node.RAMTotalMB != 4096 {
		t.Fatalf("malformed stat: err %v, node %+v; want an error and memory still read", err, node)
	}
}

// On this machine the sampler agrees with gopsutil, which it replaced.
func TestNodeSamplerMatchesGopsutil(t *testing.T) {
	n := newNodeSampler("/proc")
	defer n.close()
	node, err := n.sample()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := mem.VirtualMemory()
	if err != nil {
		t.Fatal(err)
	}
	if node.RAMTotalMB != vm.Total>>20 {
		t.Errorf("total %d MiB, gopsutil %d", node.RAMTotalMB, vm.Total>>20)
	}
	used := (vm.Total - vm.Available) >> 20
	if d := int64(node.RAMUsedMB) - int64(used); d < -256 || d > 256 {
		t.Errorf("used %d MiB, gopsutil %d a moment later", node.RAMUsedMB, used)
	}
	if node.CPUPct <= 0 || node.CPUPct > 100 {
		t.Errorf("cpu since boot %v %%", node.CPUPct)
	}
}
