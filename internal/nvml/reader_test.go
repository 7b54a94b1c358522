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
}

func (f *fakeGPU) device() *mock.Device {
	d := &mock.Device{}
	d.GetUUIDFunc = func() (string, gonvml.Return) { return h200UUID, gonvml.SUCCESS }
	d.GetNameFunc = func() (string, gonvml.Return) { return "NVIDIA H200", gonvml.SUCCESS }
	d.GetMemoryInfoFunc = func() (gonvml.Memory, gonvml.Return) {
		return gonvml.Memory{Total: 143771 << 20, Used: 4909 << 20}, gonvml.SUCCESS
	}
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
	return &mock.Interface{
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
	if info.Driver != "580.159.04" || info.CUDA != "13.0" || len(info.GPUs) != 1 || info.GPUs[0].ComputeCapability != "9.0" || info.GPUs[0].MemTotalMiB != 143771 {
		t.Fatalf("info %+v", info)
	}
	s := sample(t, r)
	d := s.Devices[0]
	if d.UUID != h200UUID || d.UtilPct != 98 || d.MemUsedMiB != 4909 || d.TempC != 41 || d.PowerW != 310.5 || d.PowerLimitW != 700 ||
		!slices.Equal(d.Throttle, []string{"sw_power_cap"}) || d.Has != HasTemp|HasPower|HasThrottle|HasECC|HasRemap {
		t.Fatalf("device %+v", d)
	}
	if !s.PerProcess || len(s.Procs) != 2 || s.Procs[0].SMPct != 83 || s.Procs[1].SMPct != 14 || s.Procs[0].UsedMiB != 4900 {
		t.Fatalf("procs %+v", s)
	}
	// The next reading asks for samples after the newest one seen.
	sample(t, r)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.since) != 2 || f.since[1] != now+11 {
		t.Fatalf("since %v", f.since)
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
