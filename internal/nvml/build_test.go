package nvml

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A stray nvml.h in the caller's TMPDIR (NVIDIA's cuda_nvml_dev unpacked
// into /tmp) broke a cold cgo build of go-nvml: cgo's probe files live in
// $TMPDIR and gcc looks beside them first. The Makefile builds with a
// temporary directory of its own; with a hostile header in the caller's
// TMPDIR and a cold build cache, the cgo build still passes.
func TestBuildIgnoresTMPDIR(t *testing.T) {
	if testing.Short() {
		t.Skip("a cold cgo build: not in -short")
	}
	for _, tool := range []string{"make", "cc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s here", tool)
		}
	}
	hostile := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostile, "nvml.h"), []byte("#error a stray nvml.h in TMPDIR was included\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-s", "-C", "../..", "cgo-build-check")
	cmd.Env = append(os.Environ(), "TMPDIR="+hostile, "GOCACHE="+t.TempDir(), "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "stray nvml.h") {
		t.Fatalf("make cgo-build-check with a hostile TMPDIR and a cold cache: %v\n%.3000s", err, out)
	}
}
