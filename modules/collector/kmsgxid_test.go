package collector

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/kmsg"
)

// An Xid is counted once whichever source saw it first, and a code the
// catalogue does not list is counted as "other": a hostile kernel log
// cannot make a series of each number it writes.
func TestXIDCountsAreBounded(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c, err := New(Config{Hive: wire.HiveInfo{ID: "x"}, Interval: time.Second, GPU: NoGPU{}}, bustest.Start(t), nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for code := uint64(900000); code < 900100; code++ {
		c.applyKmsg(now, kmsg.Event{Code: code, PCI: "0000:05:00"})
	}
	c.applyKmsg(now, kmsg.Event{Code: 31, PCI: "0000:05:00"})
	c.noteXIDs(now, gpuTick{snap: GPUSnapshot{XIDs: []GPUXID{{Index: -1, UUID: "PCI:0000:05:00", Code: 31}}}})
	want := `
# HELP hive_gpu_xid_errors_total XID errors the driver reported, by GPU index and XID code.
# TYPE hive_gpu_xid_errors_total counter
hive_gpu_xid_errors_total{gpu="-1",xid="31"} 1
hive_gpu_xid_errors_total{gpu="-1",xid="other"} 100
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "hive_gpu_xid_errors_total"); err != nil {
		t.Error(err)
	}
}
