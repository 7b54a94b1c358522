// Package proctest reads what the kernel says a process used, as the
// control that tests compare the hive's figures against.
package proctest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// CPUSeconds is the user plus system CPU time of pid, from
// /proc/<pid>/stat (USER_HZ is 100 on Linux).
func CPUSeconds(pid int) (float64, error) {
	return cpuSeconds(pid, 2)
}

// cpuSeconds sums n of stat's utime, stime, cutime and cstime.
func cpuSeconds(pid, n int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return 0, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 15 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var t float64
	for _, v := range f[11 : 11+n] {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: CPU field %q", pid, v)
		}
		t += x
	}
	return t / 100, nil
}

// CPU is CPUSeconds for tests: it fails tb instead of returning an error.
func CPU(tb testing.TB, pid int) float64 {
	tb.Helper()
	c, err := CPUSeconds(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// CPUSecondsWithChildren is CPUSeconds plus the CPU time of pid's
// children that it has waited for (cutime, cstime): a daemon's and the
// commands it runs, such as the hive and its nvidia-smi runs.
func CPUSecondsWithChildren(pid int) (float64, error) {
	return cpuSeconds(pid, 4)
}
