//go:build cgo

package nvml

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
)

// xidQueue bounds the XIDs kept between two Samples; past it they are
// dropped and counted (XIDsDropped).
const xidQueue = 256

// Reader reads the GPUs through one NVML library.
type Reader struct {
	lib  gonvml.Interface
	info Info
	devs []handle

	calls chan func() // run, one at a time, by the NVML goroutine
	stop  chan struct{}
	wg    sync.WaitGroup
	busy  atomic.Bool // a call has not returned: the driver is wedged

	mu          sync.Mutex
	xids        []XID
	xidsDropped uint64
}

type handle struct {
	dev gonvml.Device
	GPUInfo
	util *utilWindow // process samples between readings; the NVML goroutine's
	gpm  *gpmState   // nil without GPM
}

// Open loads NVML from path ("" is libnvidia-ml.so.1 from the loader's
// search path), initialises it and caches every device's handle. Any
// failure is ErrUnavailable with the cause.
func Open(path string) (*Reader, error) {
	var opts []gonvml.LibraryOption
	if path != "" {
		opts = append(opts, gonvml.WithLibraryPath(path))
	}
	return newReader(gonvml.New(opts...))
}

func newReader(lib gonvml.Interface) (r *Reader, err error) {
	defer func() {
		// A library that fails to load can panic inside the binding.
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("%w: %v", ErrUnavailable, p)
		}
	}()
	if ret := lib.Init(); ret != gonvml.SUCCESS {
		return nil, fmt.Errorf("%w: init: %v", ErrUnavailable, lib.ErrorString(ret))
	}
	r = &Reader{lib: lib, calls: make(chan func()), stop: make(chan struct{})}
	if err := r.load(); err != nil {
		_ = lib.Shutdown()
		return nil, err
	}
	r.wg.Go(r.serve)
	r.wg.Go(r.watchXIDs)
	return r, nil
}

// load reads what does not change: the driver, CUDA and each device.
func (r *Reader) load() error {
	lib := r.lib
	if v, ret := lib.SystemGetDriverVersion(); ret == gonvml.SUCCESS {
		r.info.Driver = v
	}
	if v, ret := lib.SystemGetCudaDriverVersion(); ret == gonvml.SUCCESS {
		r.info.CUDA = fmt.Sprintf("%d.%d", v/1000, v%1000/10)
	}
	r.info.Memory = MemoryV1
	if hasSymbol(lib, "nvmlDeviceGetMemoryInfo_v2") {
		r.info.Memory = MemoryV2
	}
	n, ret := lib.DeviceGetCount()
	if ret != gonvml.SUCCESS {
		return fmt.Errorf("%w: device count: %v", ErrUnavailable, lib.ErrorString(ret))
	}
	for i := range n {
		dev, ret := lib.DeviceGetHandleByIndex(i)
		if ret != gonvml.SUCCESS {
			return fmt.Errorf("%w: device %d: %v", ErrUnavailable, i, lib.ErrorString(ret))
		}
		h := handle{dev: dev, GPUInfo: GPUInfo{Index: i}, util: &utilWindow{}}
		h.UUID, _ = dev.GetUUID()
		h.Name, _ = dev.GetName()
		if pci, ret := dev.GetPciInfo(); ret == gonvml.SUCCESS {
			h.BusID = busID(pci.BusId[:])
		}
		h.NVLinks = activeLinks(dev)
		var d Device
		if r.readMemory(h, &d) == gonvml.SUCCESS {
			h.MemTotalMiB = d.MemTotalMiB
		}
		h.gpm = openGPM(lib, dev)
		h.GPM = h.gpm != nil
		if major, minor, ret := dev.GetCudaComputeCapability(); ret == gonvml.SUCCESS {
			h.ComputeCapability = fmt.Sprintf("%d.%d", major, minor)
		}
		r.devs = append(r.devs, h)
		r.info.GPUs = append(r.info.GPUs, h.GPUInfo)
	}
	return nil
}

// Info is the driver, CUDA and the GPUs as Open found them.
func (r *Reader) Info() Info { return r.info }

// Name names the source for logs and /capabilities.
func (r *Reader) Name() string { return "nvml" }

// Close stops the goroutines (a wedged call is not waited for beyond a
// second) and shuts NVML down.
func (r *Reader) Close() {
	close(r.stop)
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		for _, h := range r.devs {
			if h.gpm != nil {
				h.gpm.free(r.lib)
			}
		}
		_ = r.lib.Shutdown()
	case <-time.After(time.Second):
	}
}

// serve runs the calls one at a time.
func (r *Reader) serve() {
	for {
		select {
		case f := <-r.calls:
			f()
		case <-r.stop:
			return
		}
	}
}

// Sample reads every GPU within ctx's deadline. A reading that does not
// finish in time is ErrWedged; so is every Sample while it has not.
func (r *Reader) Sample(ctx context.Context) (Snapshot, error) {
	if r.busy.Load() {
		return Snapshot{}, fmt.Errorf("%w (still waiting for an earlier one)", ErrWedged)
	}
	type result struct {
		s   Snapshot
		err error
	}
	out := make(chan result, 1)
	r.busy.Store(true)
	call := func() {
		s, err := r.read()
		r.busy.Store(false) // before the result: the next Sample may follow at once
		out <- result{s, err}
	}
	select {
	case r.calls <- call:
	case <-ctx.Done():
		r.busy.Store(false)
		return Snapshot{}, fmt.Errorf("%w: %v", ErrWedged, ctx.Err())
	case <-r.stop:
		r.busy.Store(false)
		return Snapshot{}, ErrUnavailable
	}
	select {
	case res := <-out:
		s := res.s
		r.mu.Lock()
		s.XIDs, r.xids = r.xids, nil
		r.mu.Unlock()
		return s, res.err
	case <-ctx.Done():
		return Snapshot{}, fmt.Errorf("%w: %v", ErrWedged, ctx.Err())
	}
}

// XIDsDropped counts XIDs that found the queue between two Samples full.
func (r *Reader) XIDsDropped() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.xidsDropped
}

// read is one reading of every device; it runs on the NVML goroutine. A
// device that answers neither utilisation nor memory (and is not lost)
// makes the reading fail: its GPUs could be read and no longer can.
func (r *Reader) read() (Snapshot, error) {
	s := Snapshot{PerProcess: true}
	for _, h := range r.devs {
		d, lost, err := r.readDevice(h)
		if err != nil {
			return Snapshot{}, err
		}
		s.Devices = append(s.Devices, d)
		if lost {
			s.PerProcess = false
			continue
		}
		procs, perProcess := r.readProcs(h)
		s.Procs = append(s.Procs, procs...)
		s.PerProcess = s.PerProcess && perProcess
	}
	if len(s.Procs) == 0 {
		s.PerProcess = true // nothing to tell apart
	}
	return s, nil
}

// readDevice reads one GPU's figures. lost: NVML says it is gone.
func (r *Reader) readDevice(h handle) (Device, bool, error) {
	d := Device{Index: h.Index, UUID: h.UUID, Name: h.Name, BusID: h.BusID, UtilPct: -1, MemTotalMiB: h.MemTotalMiB}
	u, ret := h.dev.GetUtilizationRates()
	if ret == gonvml.ERROR_GPU_IS_LOST {
		d.Lost = true
		return d, true, nil
	}
	if ret == gonvml.SUCCESS {
		d.UtilPct = float64(u.Gpu)
	}
	if mret := r.readMemory(h, &d); mret != gonvml.SUCCESS && ret != gonvml.SUCCESS {
		return Device{}, false, fmt.Errorf("GPU %d (%s): utilisation: %v; memory: %v", h.Index, h.UUID, r.lib.ErrorString(ret), r.lib.ErrorString(mret))
	}
	if t, ret := h.dev.GetTemperature(gonvml.TEMPERATURE_GPU); ret == gonvml.SUCCESS {
		d.TempC, d.Has = t, d.Has|HasTemp
	}
	pw, ret1 := h.dev.GetPowerUsage()
	lim, ret2 := h.dev.GetEnforcedPowerLimit()
	if ret1 == gonvml.SUCCESS && ret2 == gonvml.SUCCESS {
		d.PowerW, d.PowerLimitW, d.Has = float64(pw)/1000, float64(lim)/1000, d.Has|HasPower
	}
	if mask, ret := h.dev.GetCurrentClocksEventReasons(); ret == gonvml.SUCCESS {
		d.Throttle, d.Has = throttleNames(mask), d.Has|HasThrottle
	}
	if n, ret := h.dev.GetTotalEccErrors(gonvml.MEMORY_ERROR_TYPE_UNCORRECTED, gonvml.VOLATILE_ECC); ret == gonvml.SUCCESS {
		d.ECCUncorrected, d.Has = n, d.Has|HasECC
	}
	if _, _, pending, failed, ret := h.dev.GetRemappedRows(); ret == gonvml.SUCCESS {
		d.RemapPending, d.RemapFailed, d.Has = pending, failed, d.Has|HasRemap
	}
	readLinks(h, &d)
	if h.gpm != nil {
		if g, ok := h.gpm.read(r.lib, h.dev); ok {
			d.GPM, d.Has = g, d.Has|HasGPM
		}
	}
	return d, false, nil
}

// readProcs lists one GPU's compute processes with their share of it
// since the previous reading (utilWindow). perProcess is false where the
// driver offers no per-process figures.
func (r *Reader) readProcs(h handle) ([]Proc, bool) {
	infos, ret := h.dev.GetComputeRunningProcesses()
	if ret != gonvml.SUCCESS || len(infos) == 0 {
		return nil, true
	}
	pids := make([]uint32, len(infos))
	for i, p := range infos {
		pids[i] = p.Pid
	}
	shares, perProcess := h.util.shares(h.dev, pids, time.Now())
	out := make([]Proc, 0, len(infos))
	for _, p := range infos {
		pr := Proc{PID: p.Pid, UUID: h.UUID, UsedMiB: p.UsedGpuMemory >> 20, SMPct: -1}
		if perProcess {
			sh := shares[p.Pid]
			pr.SMPct, pr.Sampled = sh.pct, sh.sampled
		}
		out = append(out, pr)
	}
	return out, perProcess
}

// watchXIDs waits on an event set for XID errors of every GPU and keeps
// them for the next Sample. It ends with Close.
func (r *Reader) watchXIDs() {
	set, ret := r.lib.EventSetCreate()
	if ret != gonvml.SUCCESS {
		return
	}
	defer set.Free()
	registered := 0
	for _, h := range r.devs {
		if h.dev.RegisterEvents(gonvml.EventTypeXidCriticalError, set) == gonvml.SUCCESS {
			registered++
		}
	}
	if registered == 0 {
		return
	}
	for {
		select {
		case <-r.stop:
			return
		default:
		}
		// A bounded wait, so Close is seen within it.
		ev, ret := set.Wait(500)
		switch {
		case ret == gonvml.SUCCESS && ev.EventType == gonvml.EventTypeXidCriticalError:
			r.keepXID(ev)
		case ret == gonvml.ERROR_TIMEOUT, ret == gonvml.SUCCESS:
		default:
			select { // a failing wait is not spun on
			case <-r.stop:
				return
			case <-time.After(time.Second):
			}
		}
	}
}

func (r *Reader) keepXID(ev gonvml.EventData) {
	x := XID{Index: -1, Code: ev.EventData, At: time.Now()}
	if ev.Device != nil {
		x.UUID, _ = ev.Device.GetUUID()
	}
	for _, h := range r.devs {
		if h.UUID == x.UUID {
			x.Index = h.Index
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.xids) >= xidQueue {
		r.xidsDropped++
		return
	}
	r.xids = append(r.xids, x)
}

// busID is a C string of NVML's fixed-size buffer.
func busID(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

// activeLinks are the device's NVLinks that are up (none on a PCIe card,
// where the first query is not supported).
func activeLinks(dev gonvml.Device) []int {
	var out []int
	for l := range gonvml.NVLINK_MAX_LINKS {
		st, ret := dev.GetNvLinkState(l)
		if ret != gonvml.SUCCESS {
			break
		}
		if st == gonvml.FEATURE_ENABLED {
			out = append(out, l)
		}
	}
	return out
}

// readLinks reads the PCIe replay counter and the NVLinks' replay and
// recovery errors.
func readLinks(h handle, d *Device) {
	if n, ret := h.dev.GetPcieReplayCounter(); ret == gonvml.SUCCESS {
		d.PCIeReplays, d.Has = uint64(n), d.Has|HasPCIe
	}
	if len(h.NVLinks) == 0 {
		return
	}
	var sum uint64
	for _, l := range h.NVLinks {
		for _, c := range []gonvml.NvLinkErrorCounter{gonvml.NVLINK_ERROR_DL_REPLAY, gonvml.NVLINK_ERROR_DL_RECOVERY} {
			if n, ret := h.dev.GetNvLinkErrorCounter(l, c); ret == gonvml.SUCCESS {
				sum += n
			}
		}
	}
	d.NVLinkErrors, d.Has = sum, d.Has|HasNVLink
}
