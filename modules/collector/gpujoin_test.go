package collector

import (
	"context"
	"testing"

	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/gpu"
	"github.com/rbee/hive/internal/nvsmi"
)

// Two PyTorch workers on one H200 (driver 580), recorded by make
// gpu-check: one busy, one at 25 % duty. With pmon their gpu_util_pct
// differ (internal/gpu tests the device mean without it).
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

	sa, sb, snap := sample(gpu.FromRunner(nvsmi.Replay{Dir: rec}))
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
}
