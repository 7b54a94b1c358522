package nvsmi

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Recorded on an H200, driver 580.159.04, by `make gpu-check` (gpucheck
// -record): two PyTorch workers on one GPU, one busy, one at 25 % duty.
func TestParsePmonRecorded(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []ProcUtil
	}{
		{"0-idle/pmon-um.txt", nil},
		{"1-busy/pmon-um.txt", []ProcUtil{{0, 527, 98, 4900, true}}},
		{"2-two/pmon-um.txt", []ProcUtil{{0, 527, 83, 4900, true}, {0, 836, 14, 2852, true}}},
		// The second run: the driver had no sample of the light worker.
		{"2-two/pmon-um-run2.txt", []ProcUtil{{0, 533, 96, 4900, true}, {0, 934, -1, 2852, true}}},
		// An idle worker holding memory: 0, or no sample at all ("-").
		{"3-idle-held/pmon-um.txt", []ProcUtil{{0, 527, 0, 4900, true}, {0, 836, -1, 2852, true}}},
		// -s u has no fb column: memory unknown.
		{"2-two/pmon-u.txt", []ProcUtil{{0, 527, 85, 0, false}, {0, 836, 12, 0, false}}},
		// Three samples: the last of each process counts.
		{"2-two/pmon-um-c3.txt", []ProcUtil{{0, 527, 97, 4900, true}, {0, 836, -1, 2852, true}}},
	} {
		b, err := os.ReadFile(filepath.Join("testdata/h200", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParsePmon(strings.NewReader(string(b)))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, %v\nwant %+v", tc.file, got, err, tc.want)
		}
	}
}

func TestParsePmonColumnsByHeader(t *testing.T) {
	// A driver that moves columns and adds one: found by name.
	in := "# pid gpu   sm  new  fb  command\n# #   Idx   %   x    MB  name\n  42   1    50  7    100 my worker\n  43   x    1   1    1   bad\n  44   1  101   1    5   over100\n"
	got, err := ParsePmon(strings.NewReader(in))
	want := []ProcUtil{{1, 42, 50, 100, true}, {1, 44, -1, 5, true}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v", got, err)
	}
	for name, bad := range map[string]string{
		"empty":          "",
		"no header":      "    0   527   C  83  20\n",
		"no sm column":   "# gpu pid type\n 0 527 C\n",
		"error message":  "Failed to initialize NVML: Driver/library version mismatch\n",
		"too many lines": "# gpu pid sm\n" + strings.Repeat("0 1 1\n", maxPmonLines+1),
	} {
		if got, err := ParsePmon(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: accepted as %+v", name, got)
		}
	}
}

// The runner bounds what nvidia-smi may print.
func TestExecBoundsOutput(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "nvidia-smi")
	script := "#!/bin/sh\nhead -c " + "2000000" + " /dev/zero | tr '\\0' x\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := Exec{Path: p}.Run(context.Background(), Pmon)
	if err == nil || !strings.Contains(err.Error(), "output over") {
		t.Fatalf("2 MB of output: %d bytes, %v", len(out), err)
	}
}
