//go:build cgo

package nvml

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const h200UUID = "GPU-4d8d8a84-cbed-9747-95cd-d830557304f2"

// fakeGPU is one mocked H200 with the figures of the recordings in
// internal/nvsmi/testdata/h200/1-busy; tests change them.
type fakeGPU struct {
	mu      sync.Mutex
	utilRet gonvml.Return
	samples []gonvml.ProcessUtilizationSample
	sampRet gonvml.Return
	since   []uint64 // GetProcessUtilization's arguments
	block   chan struct{}
	xids    chan uint64
	// v1Only is a driver without nvmlDeviceGetMemoryInfo_v2; gpm one
	// whose GPU counts its own work, with these metrics (by GPM id).
	v1Only bool
	gpm    map[gonvml.GpmMetricId]float64
}

func (f *fakeGPU) device() *mock.Device {
	d := &mock.Device{}
	d.GetUUIDFunc = func() (string, gonvml.Return) { return h200UUID, gonvml.SUCCESS }
	d.GetNameFunc = func() (string, gonvml.Return) { return "NVIDIA H200", gonvml.SUCCESS }
	d.GetPcieReplayCounterFunc = func() (int, gonvml.Return) { return 3, gonvml.SUCCESS }
	d.GetNvLinkStateFunc = func(l int) (gonvml.EnableState, gonvml.Return) {
		if l >= 2 {
			return 0, gonvml.ERROR_INVALID_ARGUMENT
		}
		return gonvml.FEATURE_ENABLED, gonvml.SUCCESS
	}
	d.GetNvLinkErrorCounterFunc = func(l int, c gonvml.NvLinkErrorCounter) (uint64, gonvml.Return) {
		return uint64(10*l + int(c) + 1), gonvml.SUCCESS
	}
	d.GetPciInfoFunc = func() (gonvml.PciInfo, gonvml.Return) {
		var p gonvml.PciInfo
		for i, c := range "00000000:05:00.0" {
			p.BusId[i] = int8(c)
		}
		return p, gonvml.SUCCESS
	}
	// The H200's figures: v1 counts the driver's 615 MiB as used.
	d.GetMemoryInfoFunc = func() (gonvml.Memory, gonvml.Return) {
		return gonvml.Memory{Total: 143771 << 20, Used: (4909 + 615) << 20, Free: (143771 - 4909 - 615) << 20}, gonvml.SUCCESS
	}
	d.GetMemoryInfo_v2Func = func() (gonvml.Memory_v2, gonvml.Return) {
		return gonvml.Memory_v2{Total: 143771 << 20, Reserved: 615 << 20, Used: 4909 << 20, Free: (143771 - 4909 - 615) << 20}, gonvml.SUCCESS
	}
	d.GpmQueryDeviceSupportFunc = func() (gonvml.GpmSupport, gonvml.Return) {
		return gonvml.GpmSupport{IsSupportedDevice: boolU32(f.gpm != nil)}, gonvml.SUCCESS
	}
	d.GpmSampleGetFunc = func(gonvml.GpmSample) gonvml.Return { return gonvml.SUCCESS }
	d.GetCudaComputeCapabilityFunc = func() (int, int, gonvml.Return) { return 9, 0, gonvml.SUCCESS }
	d.GetUtilizationRatesFunc = func() (gonvml.Utilization, gonvml.Return) {
		f.mu.Lock()
		ret, block := f.utilRet, f.block
		f.mu.Unlock()
		if block != nil {
			<-block
		}
		return gonvml.Utilization{Gpu: 98, Memory: 25}, ret
	}
	d.GetTemperatureFunc = func(gonvml.TemperatureSensors) (uint32, gonvml.Return) { return 41, gonvml.SUCCESS }
	d.GetPowerUsageFunc = func() (uint32, gonvml.Return) { return 310500, gonvml.SUCCESS }
	d.GetEnforcedPowerLimitFunc = func() (uint32, gonvml.Return) { return 700000, gonvml.SUCCESS }
	d.GetCurrentClocksEventReasonsFunc = func() (uint64, gonvml.Return) { return 0x4, gonvml.SUCCESS }
	d.GetTotalEccErrorsFunc = func(gonvml.MemoryErrorType, gonvml.EccCounterType) (uint64, gonvml.Return) {
		return 0, gonvml.SUCCESS
	}
	d.GetRemappedRowsFunc = func() (int, int, bool, bool, gonvml.Return) { return 0, 0, false, false, gonvml.SUCCESS }
	d.GetComputeRunningProcessesFunc = func() ([]gonvml.ProcessInfo, gonvml.Return) {
		return []gonvml.ProcessInfo{{Pid: 527, UsedGpuMemory: 4900 << 20}, {Pid: 600, UsedGpuMemory: 2852 << 20}}, gonvml.SUCCESS
	}
	d.GetProcessUtilizationFunc = func(since uint64) ([]gonvml.ProcessUtilizationSample, gonvml.Return) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.since = append(f.since, since)
		return f.samples, f.sampRet
	}
	d.RegisterEventsFunc = func(uint64, gonvml.EventSet) gonvml.Return { return gonvml.SUCCESS }
	return d
}

func (f *fakeGPU) lib() *mock.Interface {
	dev := f.device()
	set := &mock.EventSet{
		WaitFunc: func(ms uint32) (gonvml.EventData, gonvml.Return) {
			select {
			case code := <-f.xids:
				return gonvml.EventData{Device: dev, EventType: gonvml.EventTypeXidCriticalError, EventData: code}, gonvml.SUCCESS
			case <-time.After(time.Duration(ms) * time.Millisecond):
				return gonvml.EventData{}, gonvml.ERROR_TIMEOUT
			}
		},
		FreeFunc: func() gonvml.Return { return gonvml.SUCCESS },
	}
	ext := &mock.ExtendedInterface{LookupSymbolFunc: func(name string) error {
		if f.v1Only && name == "nvmlDeviceGetMemoryInfo_v2" {
			return errors.New("undefined symbol")
		}
		return nil
	}}
	return &mock.Interface{
		ExtensionsFunc:     func() gonvml.ExtendedInterface { return ext },
		GpmSampleAllocFunc: func() (gonvml.GpmSample, gonvml.Return) { return &mock.GpmSample{}, gonvml.SUCCESS },
		GpmSampleFreeFunc:  func(gonvml.GpmSample) gonvml.Return { return gonvml.SUCCESS },
		GpmMetricsGetFunc: func(g *gonvml.GpmMetricsGetType) gonvml.Return {
			for i := range g.NumMetrics {
				g.Metrics[i].Value = f.gpm[gonvml.GpmMetricId(g.Metrics[i].MetricId)]
			}
			return gonvml.SUCCESS
		},
		InitFunc:                       func() gonvml.Return { return gonvml.SUCCESS },
		ShutdownFunc:                   func() gonvml.Return { return gonvml.SUCCESS },
		ErrorStringFunc:                func(r gonvml.Return) string { return "nvml error " + string(rune('0'+int(r)%10)) },
		SystemGetDriverVersionFunc:     func() (string, gonvml.Return) { return "580.159.04", gonvml.SUCCESS },
		SystemGetCudaDriverVersionFunc: func() (int, gonvml.Return) { return 13000, gonvml.SUCCESS },
		DeviceGetCountFunc:             func() (int, gonvml.Return) { return 1, gonvml.SUCCESS },
		DeviceGetHandleByIndexFunc:     func(int) (gonvml.Device, gonvml.Return) { return dev, gonvml.SUCCESS },
		EventSetCreateFunc:             func() (gonvml.EventSet, gonvml.Return) { return set, gonvml.SUCCESS },
	}
}

func boolU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func open(t *testing.T, f *fakeGPU) *Reader {
	t.Helper()
	if f.xids == nil {
		f.xids = make(chan uint64, 8)
	}
	r, err := newReader(f.lib())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func sample(t *testing.T, r *Reader) Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := r.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestInfoAndFigures(t *testing.T) {
	now := uint64(time.Now().UnixMicro()) // the driver's clock: µs since the epoch
	f := &fakeGPU{samples: []gonvml.ProcessUtilizationSample{{Pid: 527, TimeStamp: now + 10, SmUtil: 83}, {Pid: 600, TimeStamp: now + 11, SmUtil: 14}}}
	r := open(t, f)
	info := r.Info()
	if info.Driver != "580.159.04" || info.CUDA != "13.0" || len(info.GPUs) != 1 || info.GPUs[0].ComputeCapability != "9.0" ||
		info.GPUs[0].MemTotalMiB != 143771 || info.Memory != MemoryV2 || info.GPUs[0].GPM {
		t.Fatalf("info %+v", info)
	}
	s := sample(t, r)
	d := s.Devices[0]
	// Memory as nvidia-smi counts it: v2's used, the reserved apart.
	if d.UUID != h200UUID || d.UtilPct != 98 || d.MemUsedMiB != 4909 || d.MemReservedMiB != 615 || d.MemFreeMiB != 143771-4909-615 ||
		d.TempC != 41 || d.BusID != "00000000:05:00.0" || d.PCIeReplays != 3 || d.NVLinkErrors != 1+2+11+12 || d.PowerW != 310.5 || d.PowerLimitW != 700 ||
		!slices.Equal(d.Throttle, []string{"sw_power_cap"}) || d.Has != HasTemp|HasPower|HasThrottle|HasECC|HasRemap|HasReserved|HasFree|HasPCIe|HasNVLink {
		t.Fatalf("device %+v", d)
	}
	if !s.PerProcess || len(s.Procs) != 2 || s.Procs[0].SMPct != 83 || s.Procs[1].SMPct != 14 || s.Procs[0].UsedMiB != 4900 ||
		!s.Procs[0].Sampled || !s.Procs[1].Sampled {
		t.Fatalf("procs %+v", s)
	}
	// The next reading asks for samples from the oldest point a process
	// is owed: here both were last seen at their own samples.
	sample(t, r)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.since) != 2 || f.since[1] != now+10 {
		t.Fatalf("since %v", f.since)
	}
}

// A driver without nvmlDeviceGetMemoryInfo_v2: v1, which counts reserved
// memory as used, said in Info.
func TestMemoryV1Fallback(t *testing.T) {
	r := open(t, &fakeGPU{v1Only: true})
	d := sample(t, r).Devices[0]
	if r.Info().Memory != MemoryV1 || d.MemUsedMiB != 4909+615 || d.Has&HasReserved != 0 {
		t.Fatalf("v1: %s, device %+v", r.Info().Memory, d)
	}
}

// Every sample since the previous reading counts, each weighted by the
// time it covers: a busy process at 90 then 30 for twice as long reads
// 50; a process with memory on the GPU and no sample is unsampled, not 0.
func TestProcessSharesAreWindowMeans(t *testing.T) {
	f := &fakeGPU{}
	r := open(t, f)
	sample(t, r) // the first window's start
	start := uint64(time.Now().UnixMicro())
	f.mu.Lock()
	f.samples = []gonvml.ProcessUtilizationSample{
		{Pid: 527, TimeStamp: start + 100_000, SmUtil: 90},
		{Pid: 527, TimeStamp: start + 300_000, SmUtil: 30},
		{Pid: 527, TimeStamp: start + 200_000, SmUtil: 30}, // out of order, as the buffer may be
	}
	f.mu.Unlock()
	time.Sleep(10 * time.Millisecond)
	s := sample(t, r)
	// The first sample covers the time since the previous reading, the
	// others 100 ms each: a mean between 30 and 90, nearer 30 the later
	// this reading came after start.
	p527, p600 := s.Procs[0], s.Procs[1]
	if !p527.Sampled || p527.SMPct <= 30 || p527.SMPct >= 90 || p600.Sampled || p600.SMPct != 0 {
		t.Fatalf("procs %+v", s.Procs)
	}
	// The same samples again are not counted twice.
	s = sample(t, r)
	if s.Procs[0].Sampled {
		t.Fatalf("old samples counted again: %+v", s.Procs)
	}
}

// GPM: nothing on the first reading (two samples make a figure), then the
// metrics between the last two.
func TestGPM(t *testing.T) {
	f := &fakeGPU{gpm: map[gonvml.GpmMetricId]float64{gonvml.GPM_METRIC_SM_UTIL: 0.76, gonvml.GPM_METRIC_SM_OCCUPANCY: 0.01,
		gonvml.GPM_METRIC_ANY_TENSOR_UTIL: 0, gonvml.GPM_METRIC_DRAM_BW_UTIL: 86.3, gonvml.GPM_METRIC_FP16_UTIL: 1, gonvml.GPM_METRIC_FP32_UTIL: 2}}
	r := open(t, f)
	if !r.Info().GPUs[0].GPM {
		t.Fatal("GPM not found")
	}
	if d := sample(t, r).Devices[0]; d.Has&HasGPM != 0 {
		t.Fatalf("GPM on the first reading: %+v", d.GPM)
	}
	d := sample(t, r).Devices[0]
	want := GPM{SMActivePct: 0.76, SMOccupancyPct: 0.01, DRAMBWPct: 86.3, FP16ActivePct: 1, FP32ActivePct: 2}
	if d.Has&HasGPM == 0 || d.GPM != want {
		t.Fatalf("GPM %+v, want %+v", d.GPM, want)
	}
}

// NOT_FOUND is "no sample since then": every process ran nothing.
// NOT_SUPPORTED (MIG, vGPU) is no per-process figure at all.
func TestProcessUtilizationReturns(t *testing.T) {
	f := &fakeGPU{sampRet: gonvml.ERROR_NOT_FOUND}
	s := sample(t, open(t, f))
	if !s.PerProcess || s.Procs[0].SMPct != 0 {
		t.Fatalf("not found: %+v", s)
	}
	f = &fakeGPU{sampRet: gonvml.ERROR_NOT_SUPPORTED}
	s = sample(t, open(t, f))
	if s.PerProcess || s.Procs[0].SMPct != -1 {
		t.Fatalf("not supported: %+v", s)
	}
}

func TestLostGPU(t *testing.T) {
	f := &fakeGPU{utilRet: gonvml.ERROR_GPU_IS_LOST}
	s := sample(t, open(t, f))
	if !s.Devices[0].Lost || len(s.Procs) != 0 {
		t.Fatalf("%+v", s)
	}
}

func TestXIDsReachTheNextSample(t *testing.T) {
	f := &fakeGPU{xids: make(chan uint64, 8)}
	r := open(t, f)
	f.xids <- 79
	var got []XID
	deadline := time.Now().Add(5 * time.Second)
	for len(got) == 0 && time.Now().Before(deadline) {
		got = append(got, sample(t, r).XIDs...)
		time.Sleep(10 * time.Millisecond)
	}
	if len(got) != 1 || got[0].Code != 79 || got[0].Index != 0 || got[0].UUID != h200UUID {
		t.Fatalf("xids %+v", got)
	}
	if again := sample(t, r).XIDs; len(again) != 0 {
		t.Fatalf("an XID delivered twice: %+v", again)
	}
}

// A call that does not return in time is ErrWedged, and so is every
// Sample until it does; then readings go on.
func TestWedgedCallDoesNotStallTheCaller(t *testing.T) {
	f := &fakeGPU{block: make(chan struct{})}
	r := open(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.Sample(ctx); !errors.Is(err, ErrWedged) {
		t.Fatalf("blocked call: %v", err)
	}
	start := time.Now()
	if _, err := r.Sample(context.Background()); !errors.Is(err, ErrWedged) {
		t.Fatalf("while wedged: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a Sample while wedged waited %v", took)
	}
	f.mu.Lock()
	close(f.block)
	f.block = nil
	f.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := r.Sample(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still wedged after the call returned: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestInitFailureIsUnavailable(t *testing.T) {
	lib := (&fakeGPU{}).lib()
	lib.InitFunc = func() gonvml.Return { return gonvml.ERROR_LIBRARY_NOT_FOUND }
	if _, err := newReader(lib); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("%v", err)
	}
	if _, err := Open("/nonexistent/libnvidia-ml.so.1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a missing library: %v", err)
	}
}

func TestThrottleNames(t *testing.T) {
	if got := throttleNames(0x4 | 0x40); !slices.Equal(got, []string{"sw_power_cap", "hw_thermal_slowdown"}) {
		t.Fatal(got)
	}
}
