package collector

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseGPUs(t *testing.T) {
	in := strings.Join([]string{
		"0, GPU-a, 87, 24576, 20110",
		"1, GPU-b, [N/A], 81920, 1024",
		"x, GPU-c, 1, 100, 1",             // bad index: dropped alone
		"3, GPU-d, 5, [Not Supported], 1", // no total: dropped alone
		"4, GPU-e, 5",                     // too few fields
		"",
		"5, GPU-f, 0, 40960, 0",
	}, "\n")
	got, err := ParseGPUs(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []GPUDevice{
		{Index: 0, UUID: "GPU-a", UtilPct: 87, MemTotalMiB: 24576, MemUsedMiB: 20110},
		{Index: 1, UUID: "GPU-b", UtilPct: -1, MemTotalMiB: 81920, MemUsedMiB: 1024},
		{Index: 5, UUID: "GPU-f", UtilPct: 0, MemTotalMiB: 40960, MemUsedMiB: 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestParseApps(t *testing.T) {
	got, err := ParseApps(strings.NewReader("4242, GPU-a, 20000\n17, GPU-b, [N/A]\nnope, GPU-a, 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []GPUProc{{PID: 4242, GPUUUID: "GPU-a", UsedMiB: 20000}, {PID: 17, GPUUUID: "GPU-b", UsedMiB: 0}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	if got, err := ParseApps(strings.NewReader("")); err != nil || len(got) != 0 {
		t.Fatalf("empty output: %v %v", got, err)
	}
}

func TestReplaySource(t *testing.T) {
	dir := t.TempDir()
	r := &Replay{Dir: dir}
	if _, err := r.Sample(context.Background()); !errors.Is(err, ErrNoGPU) {
		t.Fatalf("no files: %v", err)
	}
	gpus, _ := os.ReadFile("testdata/gpu2/query-gpu.csv")
	if err := os.WriteFile(filepath.Join(dir, "query-gpu.csv"), gpus, 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := r.Sample(context.Background())
	if err != nil || len(snap.Devices) != 2 || len(snap.Procs) != 0 {
		t.Fatalf("snapshot %+v, %v", snap, err)
	}
}

func TestSMIWithoutBinaryIsNoGPU(t *testing.T) {
	s := &SMI{Path: filepath.Join(t.TempDir(), "nvidia-smi")}
	if _, err := s.Sample(context.Background()); !errors.Is(err, ErrNoGPU) {
		t.Fatalf("missing binary: %v", err)
	}
}

// A fake nvidia-smi script stands in for the driver: the SMI source runs it
// exactly as it runs the real one.
func TestSMIRunsBothQueries(t *testing.T) {
	dir := t.TempDir()
	script := `#!/bin/sh
case "$1" in
--query-gpu=*) echo "0, GPU-a, 50, 16384, 100" ;;
--query-compute-apps=*) echo "123, GPU-a, 100" ;;
*) echo "bad args: $*" >&2; exit 3 ;;
esac
`
	p := filepath.Join(dir, "nvidia-smi")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	snap, err := (&SMI{Path: p}).Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Devices) != 1 || snap.Devices[0].UtilPct != 50 || len(snap.Procs) != 1 || snap.Procs[0].PID != 123 {
		t.Fatalf("snapshot %+v", snap)
	}
}

func TestNewGPUSource(t *testing.T) {
	for spec, name := range map[string]string{"auto": "nvidia-smi", "none": "none", "replay:/x": "replay:/x"} {
		s, err := NewGPUSource(spec)
		if err != nil || s.Name() != name {
			t.Errorf("NewGPUSource(%q) = %v, %v", spec, s, err)
		}
	}
	if _, err := NewGPUSource("nvml-please"); err == nil {
		t.Error("unknown source accepted")
	}
}
