package jobs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A log past its bound keeps one older copy and starts again; a writer
// holding it with O_APPEND writes on at the new end.
func TestRotateLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.log")
	w, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, _ = w.WriteString(strings.Repeat("old\n", 300))
	if !rotateLog(path, 1000) {
		t.Fatal("not rotated past the bound")
	}
	_, _ = w.WriteString("new\n")
	if b, _ := os.ReadFile(path); string(b) != "new\n" {
		t.Fatalf("log after rotation: %q", b)
	}
	if b, _ := os.ReadFile(path + ".1"); len(b) != 1200 {
		t.Fatalf("older copy holds %d bytes", len(b))
	}
	if st, _ := os.Stat(path + ".1"); st.Mode().Perm() != 0o600 {
		t.Fatalf("older copy mode %v", st.Mode())
	}
	if rotateLog(path, 1000) {
		t.Fatal("rotated within the bound")
	}
}

func TestNearlyFull(t *testing.T) {
	for _, tc := range []struct {
		free, total uint64
		want        bool
	}{{100 << 20, 1 << 40, true}, {10 << 30, 1 << 40, true}, {30 << 30, 1 << 40, false}, {1 << 30, 2 << 30, false}, {0, 0, true}} {
		if got := nearlyFull(tc.free, tc.total); got != tc.want {
			t.Errorf("nearlyFull(%d, %d) = %v", tc.free, tc.total, got)
		}
	}
}
