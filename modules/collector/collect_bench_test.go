package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/workerproc"
)

// BenchmarkCollect measures one full collection (pattern scan of every pid
// on the host, gopsutil samples of n workers, no GPU) per op.
func BenchmarkCollect(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			m := fmt.Sprintf("llm-worker-bench-%d", n)
			var cmds []*exec.Cmd
			for range n {
				cmd := exec.Command("sh", "-c", "sleep 600; true", m)
				cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
				if err := cmd.Start(); err != nil {
					b.Fatal(err)
				}
				cmds = append(cmds, cmd)
			}
			defer func() {
				for _, c := range cmds {
					_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
					_ = c.Wait()
				}
			}()
			c, err := New(Config{Hive: wire.HiveInfo{ID: "bench"}, Interval: time.Second, WorkerMatch: m,
				WorkerMatchOn: workerproc.OnCmdline, GPU: NoGPU{}}, bustest.Start(b), nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			if got := len(c.collectSamples(ctx)); got != n {
				b.Fatalf("collected %d workers, want %d", got, n)
			}
			b.ReportAllocs()
			for b.Loop() {
				c.collectSamples(ctx)
			}
		})
	}
}

// BenchmarkEncodeEvent measures the JSON encoding of one event of n
// workers, done once per tick whatever the number of subscribers.
func BenchmarkEncodeEvent(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) {
			model := "llama-3.2-1b"
			ev := wire.TelemetryEvent{Type: "telemetry", HiveID: "h", Workers: make([]wire.ProcessStats, n)}
			for i := range ev.Workers {
				ev.Workers[i] = wire.ProcessStats{PID: uint32(i), Group: "llm", Instance: "9000", CPUPct: 99.5, RSSMB: 812, Model: &model}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
