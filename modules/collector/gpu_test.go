package collector

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/rbee/hive/internal/nvsmi"
)

func TestSMISourceOnReplay(t *testing.T) {
	dir := t.TempDir()
	s := NewGPUSource(nvsmi.Replay{Dir: dir})
	if _, err := s.Sample(context.Background()); !errors.Is(err, ErrNoGPU) {
		t.Fatalf("no files: %v", err)
	}
	gpus, _ := os.ReadFile("../../internal/nvsmi/testdata/gpu2/query-gpu.csv")
	if err := os.WriteFile(filepath.Join(dir, "query-gpu.csv"), gpus, 0o644); err != nil {
		t.Fatal(err)
	}
	// Devices but no recording of compute processes: none run.
	snap, err := s.Sample(context.Background())
	if err != nil || len(snap.Devices) != 2 || len(snap.Procs) != 0 {
		t.Fatalf("snapshot %+v, %v", snap, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "query-compute-apps.csv"), []byte("123, GPU-aaaaaaaa-0000-0000-0000-000000000000, 100\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if snap, err = s.Sample(context.Background()); err != nil || len(snap.Procs) != 1 || snap.Procs[0].PID != 123 {
		t.Fatalf("snapshot %+v, %v", snap, err)
	}
	// An empty device list is no GPU, not zero GPUs with stale processes.
	if err := os.WriteFile(filepath.Join(dir, "query-gpu.csv"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sample(context.Background()); !errors.Is(err, ErrNoGPU) {
		t.Fatalf("empty device list: %v", err)
	}
}

func TestNewGPUSource(t *testing.T) {
	if s := NewGPUSource(nvsmi.None{}); s.Name() != "none" {
		t.Errorf("none: %s", s.Name())
	}
	if s := NewGPUSource(nvsmi.Exec{}); s.Name() != "nvidia-smi" {
		t.Errorf("exec: %s", s.Name())
	}
}
