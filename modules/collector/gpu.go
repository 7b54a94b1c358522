package collector

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrNoGPU means the host has no readable NVIDIA GPU. Workers then report
// zeros for every GPU field.
var ErrNoGPU = errors.New("collector: no GPU")

// GPUSource reads GPU state for every process in one query per tick.
// Sample must honour ctx's deadline: a wedged GPU must not stall the tick.
type GPUSource interface {
	Sample(ctx context.Context) (GPUSnapshot, error)
	Name() string
}

// GPUSnapshot is one reading of all GPUs and the compute processes on them.
type GPUSnapshot struct {
	Devices []GPUDevice
	Procs   []GPUProc
}

// GPUDevice is one GPU.
type GPUDevice struct {
	Index       int
	UUID        string
	UtilPct     float64 // -1 when the driver does not report it
	MemTotalMiB uint64
	MemUsedMiB  uint64
}

// GPUProc is a compute process holding memory on a GPU.
type GPUProc struct {
	PID     int32
	GPUUUID string
	UsedMiB uint64
}

// Query arguments shared by the nvidia-smi source and the replay fake, so a
// fixture recorded with these exact commands replays through one parser.
var (
	smiGPUArgs  = []string{"--query-gpu=index,uuid,utilization.gpu,memory.total,memory.used", "--format=csv,noheader,nounits"}
	smiAppsArgs = []string{"--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits"}
)

// ParseGPUs parses `nvidia-smi --query-gpu=index,uuid,utilization.gpu,
// memory.total,memory.used --format=csv,noheader,nounits`. A malformed line
// drops that GPU, not the others.
func ParseGPUs(r io.Reader) ([]GPUDevice, error) {
	recs, err := readCSV(r, 5)
	if err != nil {
		return nil, err
	}
	var out []GPUDevice
	for _, f := range recs {
		idx, err := strconv.Atoi(f[0])
		if err != nil || idx < 0 || f[1] == "" {
			continue
		}
		total, ok := parseMiB(f[3])
		if !ok {
			continue
		}
		used, _ := parseMiB(f[4])
		util := -1.0
		if v, err := strconv.ParseFloat(f[2], 64); err == nil && v >= 0 && v <= 100 {
			util = v
		}
		out = append(out, GPUDevice{Index: idx, UUID: f[1], UtilPct: util, MemTotalMiB: total, MemUsedMiB: used})
	}
	return out, nil
}

// ParseApps parses `nvidia-smi --query-compute-apps=pid,gpu_uuid,used_memory
// --format=csv,noheader,nounits`. Empty output means no compute processes.
func ParseApps(r io.Reader) ([]GPUProc, error) {
	recs, err := readCSV(r, 3)
	if err != nil {
		return nil, err
	}
	var out []GPUProc
	for _, f := range recs {
		pid, err := strconv.ParseInt(f[0], 10, 32)
		if err != nil || pid <= 0 {
			continue
		}
		used, _ := parseMiB(f[2]) // "[N/A]" under some MIG/WDDM setups: 0 MiB known
		out = append(out, GPUProc{PID: int32(pid), GPUUUID: f[1], UsedMiB: used})
	}
	return out, nil
}

// readCSV returns the records that have exactly n fields; others are
// skipped so one odd line cannot hide the rest.
func readCSV(r io.Reader, n int) ([][]string, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = -1
	var out [][]string
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			var perr *csv.ParseError
			if errors.As(err, &perr) {
				continue
			}
			return nil, fmt.Errorf("read csv: %w", err)
		}
		if len(rec) != n {
			continue
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		out = append(out, rec)
	}
}

func parseMiB(s string) (uint64, bool) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > 10_000_000 {
		return 0, false
	}
	return v, true
}

// NoGPU is the source for hosts without GPUs.
type NoGPU struct{}

// Sample implements GPUSource.
func (NoGPU) Sample(context.Context) (GPUSnapshot, error) { return GPUSnapshot{}, ErrNoGPU }

// Name implements GPUSource.
func (NoGPU) Name() string { return "none" }

var _ GPUSource = NoGPU{}
