package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
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
	out, err := exec.Command(check, "-fake", "-hive", hive, "-window", "2s", "-port", "0", "-out", filepath.Join(dir, "out")).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("gpucheck: %v", err)
	}
	m := regexp.MustCompile(`all (\d+) checks passed`).FindStringSubmatch(string(out))
	if m == nil || strings.Contains(string(out), "FAIL") {
		t.Fatal("not every check passed")
	}
	if n, _ := strconv.Atoi(m[1]); n < 20 {
		t.Fatalf("only %d checks ran", n)
	}
}
