package gpu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rbee/hive/internal/nvsmi"
)

func TestSMISourceOnReplay(t *testing.T) {
	dir := t.TempDir()
	s := FromRunner(nvsmi.Replay{Dir: dir})
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

func TestFromRunner(t *testing.T) {
	if s := FromRunner(nvsmi.None{}); s.Name() != "none" {
		t.Errorf("none: %s", s.Name())
	}
	if s := FromRunner(nvsmi.Exec{}); s.Name() != "smi" {
		t.Errorf("exec: %s", s.Name())
	}
}

// Two PyTorch workers on one H200 (driver 580), recorded by make
// gpu-check: one busy, one at 25 % duty. pmon tells them apart; without
// it the processes come from compute-apps with no share of their own, and
// a failed pmon is asked again only after PmonRetry.
func TestSMIPmonAndItsFallback(t *testing.T) {
	const rec = "../../internal/nvsmi/testdata/h200/2-two"
	share := func(snap Snapshot) map[int32]Proc {
		out := map[int32]Proc{}
		for _, p := range snap.Procs {
			out[p.PID] = p
		}
		return out
	}
	snap, err := FromRunner(nvsmi.Replay{Dir: rec}).Sample(context.Background())
	if p := share(snap); err != nil || !snap.PerProcess || p[527].SMPct != 83 || p[836].SMPct != 14 || !p[836].Sampled || p[527].UsedMiB != 4900 {
		t.Errorf("per process: %+v, %v", snap, err)
	}

	dir := t.TempDir()
	for _, f := range []string{"query-gpu.csv", "query-compute-apps.csv"} {
		copyFile(t, filepath.Join(rec, f), filepath.Join(dir, f))
	}
	src := &SMI{Runner: nvsmi.Replay{Dir: dir}}
	snap, err = src.Sample(context.Background())
	if p := share(snap); err != nil || snap.PerProcess || snap.Fallback == "" || p[527].SMPct != -1 || p[527].UsedMiB != 4900 || p[836].UsedMiB != 2852 {
		t.Errorf("without pmon: %+v, %v", snap, err)
	}
	copyFile(t, filepath.Join(rec, "pmon-um.txt"), filepath.Join(dir, "pmon-um.txt"))
	if snap, _ = src.Sample(context.Background()); snap.PerProcess {
		t.Error("pmon asked again before PmonRetry")
	}
	src.PmonRetry = time.Nanosecond
	src.pmonFailed(nvsmi.ErrNoGPU)
	if snap, _ = src.Sample(context.Background()); !snap.PerProcess || share(snap)[527].SMPct != 83 {
		t.Errorf("pmon after its retry: %+v", snap)
	}
}

// Describe names the GPUs and the versions nvidia-smi reports.
func TestSMIDescribe(t *testing.T) {
	d, err := FromRunner(nvsmi.Replay{Dir: "../../internal/nvsmi/testdata/h200/2-two"}).Describe(context.Background())
	if err != nil || d.Source == "" || len(d.GPUs) == 0 {
		t.Fatalf("describe: %+v, %v", d, err)
	}
	if d, err := (None{}).Describe(context.Background()); err != nil || d.Source != "none" || d.GPUs != nil {
		t.Fatalf("none: %+v, %v", d, err)
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
