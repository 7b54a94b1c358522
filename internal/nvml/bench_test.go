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
// GPUs with two processes each. The fake answers from files it reads on
// every call, so this is an upper bound of the binding's cost.
func BenchmarkSampleFakeLibrary(b *testing.B) {
	lib := os.Getenv("FAKE_NVML_LIB")
	if lib == "" {
		b.Skip("FAKE_NVML_LIB unset: run make bench-nvml")
	}
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("gpus=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			var gpus, procs strings.Builder
			for i := range n {
				fmt.Fprintf(&gpus, "%d GPU-%08d-0000-0000-0000-000000000000 143771 4909 98 63 680990 700000 9 0 NVIDIA H200\n", i, i)
				fmt.Fprintf(&procs, "%d %d 2048 50\n%d %d 1024 20\n", i, 1000+2*i, i, 1001+2*i)
			}
			_ = os.WriteFile(filepath.Join(dir, "gpus"), []byte(gpus.String()), 0o644)
			_ = os.WriteFile(filepath.Join(dir, "procs"), []byte(procs.String()), 0o644)
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
