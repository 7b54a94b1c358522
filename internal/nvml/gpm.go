//go:build cgo

package nvml

import (
	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// gpmMetrics are the metrics asked for, in GPM's field order.
var gpmMetrics = []gonvml.GpmMetricId{
	gonvml.GPM_METRIC_SM_UTIL, gonvml.GPM_METRIC_SM_OCCUPANCY, gonvml.GPM_METRIC_ANY_TENSOR_UTIL,
	gonvml.GPM_METRIC_DRAM_BW_UTIL, gonvml.GPM_METRIC_FP16_UTIL, gonvml.GPM_METRIC_FP32_UTIL,
}

// gpmState is one device's two samples: the previous reading's and the
// one this reading fills; a reading compares them and swaps them, so it
// never waits for a sample period inside the tick.
type gpmState struct {
	samples [2]gonvml.GpmSample
	cur     int
	primed  bool // samples[1-cur] holds the previous reading's
	// get is reused: the struct has room for every GPM metric (about
	// 40 KiB), too much to allocate per GPU per tick.
	get gonvml.GpmMetricsGetType
}

// gpmSymbols are the calls GPM needs; a driver without one has no GPM
// here (an older driver: calling a missing symbol would kill the hive).
var gpmSymbols = []string{"nvmlGpmQueryDeviceSupport", "nvmlGpmSampleAlloc", "nvmlGpmSampleFree", "nvmlGpmSampleGet", "nvmlGpmMetricsGet"}

// openGPM allocates two samples for a device that supports GPM; nil where
// it does not.
func openGPM(lib gonvml.Interface, dev gonvml.Device) *gpmState {
	for _, s := range gpmSymbols {
		if !hasSymbol(lib, s) {
			return nil
		}
	}
	if sup, ret := dev.GpmQueryDeviceSupport(); ret != gonvml.SUCCESS || sup.IsSupportedDevice == 0 {
		return nil
	}
	g := &gpmState{}
	for i := range g.samples {
		s, ret := lib.GpmSampleAlloc()
		if ret != gonvml.SUCCESS {
			g.free(lib)
			return nil
		}
		g.samples[i] = s
	}
	return g
}

func (g *gpmState) free(lib gonvml.Interface) {
	for _, s := range g.samples {
		if s != nil {
			_ = lib.GpmSampleFree(s)
		}
	}
}

// read takes this reading's sample and, from the second reading on,
// returns the metrics between the two. go-nvml's GpmMetricsGet passes
// the struct by value through a conversion and copies it back, so the
// results are read from the struct it was given, as here.
func (g *gpmState) read(lib gonvml.Interface, dev gonvml.Device) (GPM, bool) {
	if ret := dev.GpmSampleGet(g.samples[g.cur]); ret != gonvml.SUCCESS {
		g.primed = false
		return GPM{}, false
	}
	defer func() { g.cur, g.primed = 1-g.cur, true }()
	if !g.primed {
		return GPM{}, false
	}
	get := &g.get
	get.Version, get.NumMetrics, get.Sample1, get.Sample2 = 0, uint32(len(gpmMetrics)), g.samples[1-g.cur], g.samples[g.cur]
	for i, id := range gpmMetrics {
		get.Metrics[i] = gonvml.GpmMetric{MetricId: uint32(id)}
	}
	if ret := lib.GpmMetricsGet(get); ret != gonvml.SUCCESS {
		return GPM{}, false
	}
	var vals [6]float64
	for i := range gpmMetrics {
		if gonvml.Return(get.Metrics[i].NvmlReturn) != gonvml.SUCCESS {
			return GPM{}, false
		}
		vals[i] = min(max(get.Metrics[i].Value, 0), 100)
	}
	return GPM{SMActivePct: vals[0], SMOccupancyPct: vals[1], TensorActivePct: vals[2], DRAMBWPct: vals[3],
		FP16ActivePct: vals[4], FP32ActivePct: vals[5]}, true
}
