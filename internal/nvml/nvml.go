// Package nvml reads NVIDIA GPUs in process through NVML, with NVIDIA's
// own binding (github.com/NVIDIA/go-nvml): one Init, device handles kept,
// every call made by one goroutine that the caller waits for under a
// deadline, so a wedged driver never stalls the caller, and XID errors
// from an event set waited on by a goroutine of their own. The collector
// and the capabilities module read GPUs through one Reader.
//
// go-nvml loads libnvidia-ml.so.1 with dlopen, which needs cgo: a binary
// built without it has no NVML (Open says so) and reads GPUs with
// nvidia-smi instead.
package nvml

import (
	"errors"
	"time"
)

// ErrUnavailable means NVML cannot be used here: the library does not
// load, Init fails, or the binary was built without cgo.
var ErrUnavailable = errors.New("NVML unavailable")

// ErrWedged means an NVML call did not return within the caller's
// deadline; until it does, every Sample returns ErrWedged at once.
var ErrWedged = errors.New("NVML call did not return in time")

// Device is one GPU as one Sample read it. Figures a GPU does not offer
// (ECC on a consumer card, remapping before Ampere) are valid only where
// Has says so.
type Device struct {
	Index       int
	UUID        string
	Name        string
	BusID       string  // GPUInfo.BusID
	UtilPct     float64 // -1 when not offered
	MemTotalMiB uint64
	// MemUsedMiB is what processes use (v2, as nvidia-smi counts it; v1
	// adds the driver's reserved memory); MemFreeMiB what is left;
	// MemReservedMiB the driver's own, where HasReserved says it is known.
	MemUsedMiB     uint64
	MemFreeMiB     uint64
	MemReservedMiB uint64
	// GPM is the work the GPU counted itself, where HasGPM says so
	// (Hopper and newer, from the second reading on).
	GPM GPM

	Has            Figures
	TempC          uint32
	PowerW         float64
	PowerLimitW    float64
	Throttle       []string // active clock-event reasons, ThrottleNames
	ECCUncorrected uint64   // volatile
	RemapPending   bool
	RemapFailed    bool
	// PCIeReplays is the PCIe replay counter; NVLinkErrors the replay and
	// recovery errors of the NVLinks that were up at Open, summed. Both
	// only grow (until a reset).
	PCIeReplays  uint64
	NVLinkErrors uint64
	Lost         bool // NVML_ERROR_GPU_IS_LOST on this device
}

// GPM is what Hopper and newer GPUs count of their own work (GPU
// Performance Monitoring), over the time between two readings, in % of
// the GPU's capacity. The device's "utilisation" only says that a kernel
// was running: a one-thread spin kernel reads 100 % there and 0.76 % SM
// activity here (recorded on an H200); LLM decoding is bound by memory
// bandwidth, which DRAMBWPct shows.
type GPM struct {
	SMActivePct, SMOccupancyPct, TensorActivePct, DRAMBWPct, FP16ActivePct, FP32ActivePct float64
}

// Figures says which optional figures a Device carries.
type Figures uint16

// The optional figures of Device.
const (
	HasTemp Figures = 1 << iota
	HasPower
	HasThrottle
	HasECC
	HasRemap
	HasReserved
	HasGPM
	HasFree
	HasPCIe   // PCIeReplays
	HasNVLink // NVLinkErrors
)

// Proc is one compute process on one GPU.
type Proc struct {
	PID     uint32
	UUID    string // of its GPU
	UsedMiB uint64
	// SMPct is its share of the GPU's SMs since the previous Sample,
	// 0-100, the mean of the driver's samples of it weighted by the time
	// each covers; -1 where the driver offers no per-process figures
	// (MIG, vGPU).
	SMPct float64
	// Sampled says the driver had a sample of it since the previous
	// Sample: without one SMPct is 0 and means "unknown", not idle.
	Sampled bool
}

// XID is one XID error of one GPU.
type XID struct {
	Index int
	UUID  string
	Code  uint64
	At    time.Time
}

// Snapshot is one reading of every GPU.
type Snapshot struct {
	Devices []Device
	Procs   []Proc
	// PerProcess: every Proc carries SMPct.
	PerProcess bool
	// XIDs since the previous Sample, oldest first.
	XIDs []XID
}

// Info is what does not change while the driver runs: for capabilities.
type Info struct {
	Driver string // "580.159.04"
	CUDA   string // "13.0"
	GPUs   []GPUInfo
	// Memory is the memory info call in use, MemoryV2 where the driver has
	// it, else MemoryV1 (which counts reserved memory as used).
	Memory string
}

// GPUInfo is one GPU's fixed description.
type GPUInfo struct {
	Index             int
	UUID              string
	Name              string
	MemTotalMiB       uint64
	ComputeCapability string // "9.0"
	GPM               bool   // the GPU counts its own work (Hopper and newer)
	// BusID is the PCI bus id as NVML gives it ("00000000:05:00.0"),
	// which the kernel's Xid lines name; "" where NVML has none.
	BusID string
	// NVLinks are the links that were up at Open.
	NVLinks []int
}

// ThrottleNames are the JSON names of NVML's clock-event reason bits.
var ThrottleNames = []struct {
	Bit  uint64
	Name string
}{
	{0x1, "gpu_idle"},
	{0x2, "applications_clocks_setting"},
	{0x4, "sw_power_cap"},
	{0x8, "hw_slowdown"},
	{0x10, "sync_boost"},
	{0x20, "sw_thermal_slowdown"},
	{0x40, "hw_thermal_slowdown"},
	{0x80, "hw_power_brake_slowdown"},
	{0x100, "display_clock_setting"},
}

// throttleNames turns a reason mask into names, in bit order.
func throttleNames(mask uint64) []string {
	out := []string{}
	for _, t := range ThrottleNames {
		if mask&t.Bit != 0 {
			out = append(out, t.Name)
		}
	}
	return out
}
