package gpu

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rbee/hive/internal/nvsmi"
)

// Describe runs nvidia-smi's capabilities query; a host without it has
// no GPU, which is not an error.
func TestSMIDescribeWithFakeBinary(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "nvidia-smi")
	script := "#!/bin/sh\n[ \"$1\" = \"--query-gpu=index,name,memory.total,compute_cap\" ] || exit 4\necho '0, NVIDIA A100-SXM4-40GB, 40960, 8.0'\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := (&SMI{Runner: nvsmi.Exec{Path: p}}).Describe(context.Background())
	if err != nil || len(d.GPUs) != 1 || d.GPUs[0].ComputeCapability != "8.0" {
		t.Fatalf("%+v %v", d, err)
	}
	if d, err := (&SMI{Runner: nvsmi.Exec{Path: filepath.Join(dir, "missing")}}).Describe(context.Background()); err != nil || d.GPUs != nil {
		t.Fatalf("missing binary: %+v %v", d, err)
	}
}

// With nvidia-smi, /capabilities names the source as --gpu-source picks
// it and reads the driver and CUDA versions from `nvidia-smi -q` (they
// were empty, and the source "nvidia-smi").
func TestSMIDriverVersions(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "nvidia-smi")
	script := "#!/bin/sh\n[ \"$1\" = \"-q\" ] || exit 4\nprintf '\\n==============NVSMI LOG==============\\n\\nDriver Version                  : 580.159.04\\nCUDA Version                    : 13.0\\n'\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		deviceUtil bool
		want       string
	}{{false, "smi"}, {true, "smi-device"}} {
		d, _ := (&SMI{Runner: nvsmi.Exec{Path: p}, DeviceUtil: c.deviceUtil}).Describe(context.Background())
		if d.Source != c.want || d.Driver != "580.159.04" || d.CUDA != "13.0" {
			t.Errorf("device util %v: %+v", c.deviceUtil, d)
		}
	}
	if d, _ := (&SMI{Runner: nvsmi.Exec{Path: filepath.Join(dir, "missing")}}).Describe(context.Background()); d.Source != "smi" || d.Driver != "" || d.CUDA != "" {
		t.Errorf("missing binary: %+v", d)
	}
}
