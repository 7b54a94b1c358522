package nvsmi

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDevices(t *testing.T) {
	in := strings.Join([]string{
		"0, GPU-a, 87, 24576, 20110",
		"1, GPU-b, [N/A], 81920, 1024",
		"x, GPU-c, 1, 100, 1",             // bad index: dropped alone
		"3, GPU-d, 5, [Not Supported], 1", // no total: dropped alone
		"4, GPU-e, 5",                     // too few fields
		"",
		"5, GPU-f, 0, 40960, 0",
	}, "\n")
	got, err := ParseDevices(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
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
	want := []App{{PID: 4242, GPUUUID: "GPU-a", UsedMiB: 20000}, {PID: 17, GPUUUID: "GPU-b", UsedMiB: 0}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	if got, err := ParseApps(strings.NewReader("")); err != nil || len(got) != 0 {
		t.Fatalf("empty output: %v %v", got, err)
	}
}

func TestParseCaps(t *testing.T) {
	in := strings.Join([]string{
		"0, NVIDIA GeForce RTX 3090, 24576, 8.6",
		"1, NVIDIA H100 80GB HBM3, 81559, 9.0",
		"2, Broken, lots, 8.6",     // bad memory
		"3, Odd, 1024, eight",      // bad compute capability
		"x, Bad index, 1024, 8.0",  // bad index
		"4, Too big, 2000000, 8.0", // VRAM over 1 000 000 MiB
		"5, " + strings.Repeat("n", 300) + ", 1024, 8.0",
		"6, Short line",
		"7, NVIDIA A10, 23028, 8.6",
	}, "\n")
	got, err := ParseCaps(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Cap{
		{0, "NVIDIA GeForce RTX 3090", 24576, "8.6"},
		{1, "NVIDIA H100 80GB HBM3", 81559, "9.0"},
		{7, "NVIDIA A10", 23028, "8.6"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
}

// One meaning of "no GPU" for every runner: a missing binary, a missing
// recording, GPU reading off.
func TestNoGPUEverywhere(t *testing.T) {
	dir := t.TempDir()
	for _, r := range []Runner{Exec{Path: filepath.Join(dir, "nvidia-smi")}, Replay{Dir: dir}, None{}} {
		for _, q := range []Query{Devices, Apps, Caps} {
			if _, err := r.Run(context.Background(), q); !errors.Is(err, ErrNoGPU) {
				t.Errorf("%s %s: %v, want ErrNoGPU", r.Name(), q.File, err)
			}
		}
	}
}

// A fake nvidia-smi script stands in for the driver: Exec runs it exactly
// as it runs the real one, with each query's own arguments.
func TestExecRunsTheQueries(t *testing.T) {
	dir := t.TempDir()
	script := `#!/bin/sh
case "$1" in
--query-gpu=index,uuid,*) echo "0, GPU-a, 50, 16384, 100" ;;
--query-compute-apps=*) echo "123, GPU-a, 100" ;;
--query-gpu=index,name,*) echo "0, NVIDIA A100-SXM4-40GB, 40960, 8.0" ;;
*) echo "bad args: $*" >&2; exit 3 ;;
esac
`
	p := filepath.Join(dir, "nvidia-smi")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e := Exec{Path: p}
	for q, want := range map[*Query]string{&Devices: "GPU-a, 50", &Apps: "123, GPU-a", &Caps: "A100-SXM4-40GB"} {
		out, err := e.Run(context.Background(), *q)
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("%s: %q %v", q.File, out, err)
		}
	}
	if _, err := e.Run(context.Background(), Query{File: "x", Args: []string{"--nope"}}); err == nil || errors.Is(err, ErrNoGPU) {
		t.Errorf("failing nvidia-smi: %v, want an error that is not ErrNoGPU", err)
	}
}

func TestReplayRecorded(t *testing.T) {
	out, err := Replay{Dir: "testdata/gpu2"}.Run(context.Background(), Devices)
	if err != nil {
		t.Fatal(err)
	}
	devs, err := ParseDevices(bytes.NewReader(out))
	if err != nil || len(devs) != 2 {
		t.Fatalf("%+v %v", devs, err)
	}
}

func TestNew(t *testing.T) {
	for spec, name := range map[string]string{"auto": "smi", "smi": "smi", "none": "none", "replay:/x": "replay:/x"} {
		r, err := New(spec)
		if err != nil || r.Name() != name {
			t.Errorf("New(%q) = %v, %v", spec, r, err)
		}
	}
	for _, bad := range []string{"nvml-please", "replay:"} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

// Whatever nvidia-smi prints, the parsers return sane values or skip the
// line; they never panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte("0, GPU-a, 87, 24576, 20110\n1, GPU-b, [N/A], 81920, 1024\n"))
	f.Add([]byte("0, NVIDIA A10, 23028, 8.6\n"))
	f.Add([]byte("\"unterminated, 1, 2\n"))
	f.Add([]byte("# gpu pid type sm mem fb command\n# Idx # C/G % % MB name\n 0 527 C 83 20 4900 python3\n 0 - - - - - -\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if devs, err := ParseDevices(bytes.NewReader(b)); err == nil {
			for _, d := range devs {
				if d.Index < 0 || d.UUID == "" || d.UtilPct > 100 || (d.UtilPct < 0 && d.UtilPct != -1) || d.MemTotalMiB > 10_000_000 {
					t.Fatalf("device %+v", d)
				}
			}
		}
		procs, _ := ParseApps(bytes.NewReader(b))
		for _, p := range procs {
			if p.PID <= 0 {
				t.Fatalf("proc %+v", p)
			}
		}
		pm, _ := ParsePmon(bytes.NewReader(b))
		for _, p := range pm {
			if p.PID <= 0 || p.GPUIndex < 0 || p.SMPct > 100 || (p.SMPct < 0 && p.SMPct != -1) || (!p.FBOK && p.FBMiB != 0) {
				t.Fatalf("pmon %+v", p)
			}
		}
		caps, _ := ParseCaps(bytes.NewReader(b))
		for _, c := range caps {
			if c.Index < 0 || c.Name == "" || c.MemTotalMiB > 1_000_000 || !computeCap.MatchString(c.ComputeCapability) {
				t.Fatalf("cap %+v", c)
			}
		}
	})
}

// The query as the hive asks it now names the GPU and its free memory
// (the node block's name was empty with nvidia-smi).
func TestParseDevicesNameAndFree(t *testing.T) {
	got, err := ParseDevices(strings.NewReader("0, GPU-a, 98, 143771, 4909, NVIDIA H200, 138246\n1, GPU-b, 3, 81920, 1024, NVIDIA A100 80GB PCIe, [N/A]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Device{
		{Index: 0, UUID: "GPU-a", Name: "NVIDIA H200", UtilPct: 98, MemTotalMiB: 143771, MemUsedMiB: 4909, MemFreeMiB: 138246, HasFree: true},
		{Index: 1, UUID: "GPU-b", Name: "NVIDIA A100 80GB PCIe", UtilPct: 3, MemTotalMiB: 81920, MemUsedMiB: 1024},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// The driver and CUDA versions from the H200's `nvidia-smi -q`.
func TestParseVersionsRecorded(t *testing.T) {
	f, err := os.Open("testdata/h200/nvidia-smi-q-2026-12-04.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if d, c := ParseVersions(f); d != "580.159.04" || c != "13.0" {
		t.Fatalf("driver %q, CUDA %q", d, c)
	}
	if d, c := ParseVersions(strings.NewReader("Driver Version : \x1b]8;;x\nCUDA Version : 13.0; rm\n")); d != "" || c != "" {
		t.Fatalf("not versions read as versions: %q %q", d, c)
	}
}
