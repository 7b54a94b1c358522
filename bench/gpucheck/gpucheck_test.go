package main

import (
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestFakeGPUCheck runs `make gpu-check`'s program end to end against the
// fake nvidia-smi: the real hive binary, fake workers, every check.
func TestFakeGPUCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the hive for about 30 s")
	}
	dir := t.TempDir()
	hive, check := filepath.Join(dir, "hive"), filepath.Join(dir, "gpucheck")
	for bin, pkg := range map[string]string{hive: "../../cmd/hive", check: "."} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	out, err := exec.Command(check, "-fake", "-hive", hive, "-window", "2s", "-port", strconv.Itoa(port), "-out", filepath.Join(dir, "out")).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("gpucheck: %v", err)
	}
	if !strings.Contains(string(out), "all 13 checks passed") || strings.Contains(string(out), "FAIL") {
		t.Fatal("not every check passed")
	}
}
