package collector

import (
	"bytes"
	"testing"
)

// Whatever nvidia-smi prints, the parsers return sane values or skip the
// line; they never panic.
func FuzzParseGPUs(f *testing.F) {
	f.Add([]byte("0, GPU-a, 87, 24576, 20110\n1, GPU-b, [N/A], 81920, 1024\n"))
	f.Add([]byte("\"unterminated, 1, 2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		devs, err := ParseGPUs(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, d := range devs {
			if d.Index < 0 || d.UUID == "" || d.UtilPct > 100 || (d.UtilPct < 0 && d.UtilPct != -1) || d.MemTotalMiB > 10_000_000 {
				t.Fatalf("device %+v", d)
			}
		}
		procs, _ := ParseApps(bytes.NewReader(b))
		for _, p := range procs {
			if p.PID <= 0 {
				t.Fatalf("proc %+v", p)
			}
		}
	})
}
