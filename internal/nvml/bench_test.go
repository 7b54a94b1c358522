//go:build cgo

package nvml

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkSampleFakeLibrary is one Sample through the real binding
// against the fake libnvidia-ml.so.1 (make bench-nvml builds it and sets
// FAKE_NVML_LIB): what the Go side adds to NVML, per tick, for 1 and 8
// GPUs with two processes each, and with GPM on (two samples a tick and
// the metrics) for 1 GPU and for 8 with 64 processes. The fake answers
// from files it reads on every call, so this is an upper bound of the
// binding's cost.
func BenchmarkSampleFakeLibrary(b *testing.B) {
	lib := os.Getenv("FAKE_NVML_LIB")
	if lib == "" {
		b.Skip("FAKE_NVML_LIB unset: run make bench-nvml")
	}
	for _, c := range []struct {
		name        string
		gpus, procs int // procs per GPU
		gpm         bool
	}{{"gpus=1", 1, 2, false}, {"gpus=8", 8, 2, false}, {"gpus=1/gpm", 1, 2, true}, {"gpus=8/procs=64", 8, 8, false}, {"gpus=8/procs=64/gpm", 8, 8, true}} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			var gpus, procs, gpm, reserved strings.Builder
			for i := range c.gpus {
				fmt.Fprintf(&gpus, "%d GPU-%08d-0000-0000-0000-000000000000 143771 4909 98 63 680990 700000 9 0 NVIDIA H200\n", i, i)
				fmt.Fprintf(&reserved, "%d 615\n", i)
				for p := range c.procs {
					fmt.Fprintf(&procs, "%d %d 1024 %d\n", i, 1000+c.procs*i+p, 10+p)
				}
				if c.gpm {
					fmt.Fprintf(&gpm, "%d 93.1 41.5 91.2 35.4 88.0 2.1\n", i)
				}
			}
			for name, text := range map[string]string{"gpus": gpus.String(), "procs": procs.String(), "gpm": gpm.String(), "reserved": reserved.String()} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
					b.Fatal(err)
				}
			}
			b.Setenv("FAKE_NVML_DIR", dir)
			r, err := Open(lib)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				if _, err := r.Sample(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSampleMock is one Sample of one GPU with go-nvml's mock in
// place of the library: the reader's own cost (the NVML goroutine hand-off,
// the per-process join), without any C call.
func BenchmarkSampleMock(b *testing.B) {
	f := &fakeGPU{xids: make(chan uint64, 1)}
	r, err := newReader(f.lib())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	for b.Loop() {
		if _, err := r.Sample(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
