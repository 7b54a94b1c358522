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
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return 0, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return (ut + st) / 100, nil
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
