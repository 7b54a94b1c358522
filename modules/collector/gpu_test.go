package collector

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rbee/hive/bus/wire"
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
	if s := NewGPUSource(nvsmi.Exec{}); s.Name() != "smi" {
		t.Errorf("exec: %s", s.Name())
	}
}

// Two PyTorch workers on one H200 (driver 580), recorded by make
// gpu-check: one busy, one at 25 % duty. With pmon their gpu_util_pct
// differ; from the device figure alone both would show the GPU's 99 %.
func TestTwoWorkersOnOneGPU(t *testing.T) {
	const rec = "../../internal/nvsmi/testdata/h200/2-two"
	a, b := Worker{PIDs: []int32{527}}, Worker{PIDs: []int32{836}}
	sample := func(s GPUSource) (wire.ProcessStats, wire.ProcessStats, GPUSnapshot) {
		t.Helper()
		snap, err := s.Sample(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var sa, sb wire.ProcessStats
		ix := newGPUIndex(snap)
		ix.apply(a, &sa)
		ix.apply(b, &sb)
		return sa, sb, snap
	}

	sa, sb, snap := sample(NewGPUSource(nvsmi.Replay{Dir: rec}))
	if !snap.PerProcess || sa.GPUUtilPct != 83 || sb.GPUUtilPct != 14 {
		t.Errorf("per process: a %.1f b %.1f (per-process %v), want 83 and 14", sa.GPUUtilPct, sb.GPUUtilPct, snap.PerProcess)
	}
	if sa.VRAMMB != 4900 || sb.VRAMMB != 2852 || sa.TotalVRAMMB != 143771 || sb.TotalVRAMMB != 143771 {
		t.Errorf("memory: a %d/%d b %d/%d", sa.VRAMMB, sa.TotalVRAMMB, sb.VRAMMB, sb.TotalVRAMMB)
	}
	// One worker of both processes: their shares add up, at most 100.
	var both wire.ProcessStats
	newGPUIndex(snap).apply(Worker{PIDs: []int32{527, 836}}, &both)
	if both.GPUUtilPct != 97 || both.VRAMMB != 4900+2852 {
		t.Errorf("one worker of both: %.1f %% %d MiB", both.GPUUtilPct, both.VRAMMB)
	}

	// The same card without pmon: the device mean, from compute-apps.
	dir := t.TempDir()
	for _, f := range []string{"query-gpu.csv", "query-compute-apps.csv"} {
		copyFile(t, filepath.Join(rec, f), filepath.Join(dir, f))
	}
	src := &SMI{Runner: nvsmi.Replay{Dir: dir}}
	sa, sb, snap = sample(src)
	if snap.PerProcess || snap.Fallback == "" || sa.GPUUtilPct != 99 || sb.GPUUtilPct != 99 || sa.VRAMMB != 4900 || sb.VRAMMB != 2852 {
		t.Errorf("device mean: a %.1f %d MiB, b %.1f %d MiB, snapshot %+v", sa.GPUUtilPct, sa.VRAMMB, sb.GPUUtilPct, sb.VRAMMB, snap)
	}
	// A failed pmon is not asked again each tick, only after PmonRetry.
	copyFile(t, filepath.Join(rec, "pmon-um.txt"), filepath.Join(dir, "pmon-um.txt"))
	if _, _, snap = sample(src); snap.PerProcess {
		t.Error("pmon asked again before PmonRetry")
	}
	src.PmonRetry = time.Nanosecond
	src.pmonFailed(nvsmi.ErrNoGPU)
	if sa, _, snap = sample(src); !snap.PerProcess || sa.GPUUtilPct != 83 {
		t.Errorf("pmon after its retry: %+v", snap)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, b, 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
}
