package gpu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rbee/hive/internal/nvml"
	"github.com/rbee/hive/internal/nvsmi"
)

// SMI reads GPUs with two nvidia-smi runs per tick, whatever the number
// of workers, started together: one for every GPU, one pmon sample of
// every process (its utilisation and memory). Where pmon is not offered
// (MIG, vGPU, an old driver, a recording without it) the process list
// comes from --query-compute-apps and utilisation is the device mean;
// a failing pmon is tried again after PmonRetry.
type SMI struct {
	Runner nvsmi.Runner
	// PmonRetry is how long a failed pmon is not asked again; 0 is 5 min.
	PmonRetry time.Duration
	// DeviceUtil never asks pmon: gpu_util_pct is the device mean, for
	// one nvidia-smi run less per tick.
	DeviceUtil bool

	mu        sync.Mutex
	pmonAfter time.Time // pmon failed: not asked before then
	pmonErr   string
}

var _ Source = (*SMI)(nil)

// FromRunner reads GPUs through r; nil or nvsmi.None is None.
func FromRunner(r nvsmi.Runner) Source {
	if _, none := r.(nvsmi.None); r == nil || none {
		return None{}
	}
	return &SMI{Runner: r}
}

// Name implements Source: the --gpu-source value that picks it.
func (s *SMI) Name() string {
	if s.DeviceUtil && s.Runner.Name() == "smi" {
		return "smi-device"
	}
	return s.Runner.Name()
}

// Sample implements Source. No device is ErrNoGPU; no compute process
// (or no recording of them) is an empty list.
func (s *SMI) Sample(ctx context.Context) (Snapshot, error) {
	type result struct {
		procs []nvsmi.ProcUtil
		err   error
	}
	var pmon chan result
	if !s.DeviceUtil && s.pmonDue() {
		pmon = make(chan result, 1)
		go func() {
			out, err := s.Runner.Run(ctx, nvsmi.Pmon)
			if err != nil {
				pmon <- result{err: err}
				return
			}
			procs, err := nvsmi.ParsePmon(bytes.NewReader(out))
			pmon <- result{procs, err}
		}()
	}
	devs, err := s.devices(ctx)
	var pr result
	if pmon != nil {
		pr = <-pmon
	}
	if err != nil {
		return Snapshot{}, err
	}
	snap := Snapshot{Devices: devs}
	if pmon != nil && pr.err == nil {
		if procs, ok := joinPmon(devs, pr.procs); ok {
			snap.Procs, snap.PerProcess = procs, true
			s.pmonOK()
			return snap, nil
		}
		pr.err = errors.New("pmon printed no memory column")
	}
	if pmon != nil && ctx.Err() == nil {
		s.pmonFailed(pr.err)
	}
	snap.Fallback = s.fallbackReason()
	if s.DeviceUtil {
		snap.Fallback = "--gpu-source smi-device"
	}
	snap.Procs, err = s.apps(ctx)
	return snap, err
}

// Describe implements Source: the GPUs from nvidia-smi's capabilities
// query (none is an empty list), the versions from its report (a replay
// without one has none).
func (s *SMI) Describe(ctx context.Context) (Description, error) {
	d := Description{Source: s.Name()}
	if out, err := s.Runner.Run(ctx, nvsmi.Q); err == nil {
		d.Driver, d.CUDA = nvsmi.ParseVersions(bytes.NewReader(out))
	}
	out, err := s.Runner.Run(ctx, nvsmi.Caps)
	if errors.Is(err, nvsmi.ErrNoGPU) {
		return d, nil
	}
	if err != nil {
		return d, err
	}
	d.GPUs, err = nvsmi.ParseCaps(bytes.NewReader(out))
	return d, err
}

// fromSMI is a device of nvidia-smi's query: no optional figures.
func fromSMI(d nvsmi.Device) Device {
	g := Device{Index: d.Index, UUID: d.UUID, Name: d.Name, UtilPct: d.UtilPct, MemTotalMiB: d.MemTotalMiB, MemUsedMiB: d.MemUsedMiB,
		MemFreeMiB: d.MemFreeMiB}
	if d.HasFree {
		g.Has |= nvml.HasFree
	}
	return g
}

func (s *SMI) devices(ctx context.Context) ([]Device, error) {
	out, err := s.Runner.Run(ctx, nvsmi.Devices)
	if err != nil {
		return nil, err
	}
	parsed, err := nvsmi.ParseDevices(bytes.NewReader(out))
	if err != nil {
		return nil, err
	}
	if len(parsed) == 0 {
		return nil, ErrNoGPU
	}
	devs := make([]Device, len(parsed))
	for i, d := range parsed {
		devs[i] = fromSMI(d)
	}
	return devs, nil
}

func (s *SMI) apps(ctx context.Context) ([]Proc, error) {
	out, err := s.Runner.Run(ctx, nvsmi.Apps)
	if errors.Is(err, nvsmi.ErrNoGPU) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	apps, err := nvsmi.ParseApps(bytes.NewReader(out))
	procs := make([]Proc, len(apps))
	for i, a := range apps {
		procs[i] = Proc{PID: a.PID, GPUUUID: a.GPUUUID, UsedMiB: a.UsedMiB, SMPct: -1}
	}
	return procs, err
}

// joinPmon names each pmon process's GPU by UUID. It is not ok when a
// process's memory is missing: then the compute-apps query must be asked.
func joinPmon(devs []Device, ps []nvsmi.ProcUtil) ([]Proc, bool) {
	uuid := make(map[int]string, len(devs))
	for _, d := range devs {
		uuid[d.Index] = d.UUID
	}
	out := make([]Proc, 0, len(ps))
	for _, p := range ps {
		u, ok := uuid[p.GPUIndex]
		if !ok {
			continue // a GPU the device query did not list (it just went away)
		}
		if !p.FBOK {
			return nil, false
		}
		// pmon prints "-" where the driver had no sample of the process in
		// its period: not 0 %, unknown (Sampled false).
		sm := max(p.SMPct, 0)
		out = append(out, Proc{PID: p.PID, GPUUUID: u, UsedMiB: p.FBMiB, SMPct: sm, Sampled: p.SMPct >= 0})
	}
	return out, true
}

func (s *SMI) pmonDue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !time.Now().Before(s.pmonAfter)
}

func (s *SMI) pmonOK() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pmonAfter, s.pmonErr = time.Time{}, ""
}

func (s *SMI) pmonFailed(err error) {
	retry := s.PmonRetry
	if retry <= 0 {
		retry = 5 * time.Minute
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pmonAfter = time.Now().Add(retry)
	s.pmonErr = fmt.Sprintf("pmon: %v", err)
	if errors.Is(err, nvsmi.ErrNoGPU) {
		s.pmonErr = "pmon: not offered"
	}
}

func (s *SMI) fallbackReason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pmonErr
}
