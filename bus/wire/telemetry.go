package wire

import (
	"math"
	"strconv"
	"time"
)

// Status values of HiveInfo.OperationalStatus (a plain lowercase string on
// the wire).
const (
	StatusStarting = "starting"
	StatusReady    = "ready"
	StatusStopping = "stopping"
)

// TelemetryEvent is the SSE data and hive.telemetry body. Field order is
// the wire order of the original daemon.
type TelemetryEvent struct {
	Type      string         `json:"type"` // always "telemetry"
	HiveID    string         `json:"hive_id"`
	HiveInfo  HiveInfo       `json:"hive_info"`
	Timestamp string         `json:"timestamp"` // RFC 3339, "+00:00"
	Workers   []ProcessStats `json:"workers"`   // never null
	// Node is additive (after the original's fields; the Queen ignores
	// fields it does not know): the machine itself.
	Node Node `json:"node"`
	// WorkersOmitted, additive, counts the workers left out because the
	// event would have passed its size bound (FitEvent); absent when none.
	WorkersOmitted int `json:"workers_omitted,omitempty"`
}

// Node is the machine the hive runs on.
type Node struct {
	CPUPct     Float     `json:"cpu_pct"`      // busy share of all cores, 0-100
	RAMUsedMB  uint64    `json:"ram_used_mb"`  // MiB in use (total less available)
	RAMTotalMB uint64    `json:"ram_total_mb"` // MiB
	GPUs       []NodeGPU `json:"gpus"`         // never null
}

// NodeGPU is one GPU of the machine. A figure the GPU source cannot read
// (nvidia-smi has no ECC or throttle query here) is left out, never sent
// as a zero or a null.
type NodeGPU struct {
	Index          int          `json:"index"`
	UUID           string       `json:"uuid"`
	Name           string       `json:"name"`
	UtilPct        Float        `json:"util_pct"`
	VRAMUsedMB     uint64       `json:"vram_used_mb"`
	VRAMTotalMB    uint64       `json:"vram_total_mb"`
	TempC          *uint32      `json:"temp_c,omitempty"`
	PowerW         *Float       `json:"power_w,omitempty"`
	PowerLimitW    *Float       `json:"power_limit_w,omitempty"`
	Throttle       []string     `json:"throttle,omitempty"` // active clock-event reasons: sw_power_cap, hw_slowdown, ...
	ECCUncorrected *uint64      `json:"ecc_uncorrected,omitempty"`
	Health         HealthStatus `json:"health"`
	// Additive, each left out where the source cannot read it:
	// VRAMReservedMB is the driver's own memory (NVML v2 memory info; not
	// in vram_used_mb, as nvidia-smi counts), VRAMFreeMB what is left.
	VRAMReservedMB *uint64 `json:"vram_reserved_mb,omitempty"`
	VRAMFreeMB     *uint64 `json:"vram_free_mb,omitempty"`
	// UnattributedPct is util_pct less what the processes' samples account
	// for (never below 0): GPU time of processes the driver had no sample
	// of, or of no listed process.
	UnattributedPct *Float `json:"unattributed_pct,omitempty"`
	// GPM (Hopper and newer): what the GPU counted of its own work since
	// the previous tick, in % of its capacity. util_pct is "a kernel was
	// running" (100 for a one-thread kernel); these say how much of the
	// SMs, tensor cores and memory bandwidth it used.
	SMActivePct     *Float `json:"sm_active_pct,omitempty"`
	SMOccupancyPct  *Float `json:"sm_occupancy_pct,omitempty"`
	TensorActivePct *Float `json:"tensor_active_pct,omitempty"`
	DRAMBWPct       *Float `json:"dram_bw_pct,omitempty"`
	FP16ActivePct   *Float `json:"fp16_active_pct,omitempty"`
	FP32ActivePct   *Float `json:"fp32_active_pct,omitempty"`
}

// HiveInfo describes the hive itself.
type HiveInfo struct {
	ID                string       `json:"id"`
	Hostname          string       `json:"hostname"`
	Port              uint16       `json:"port"`
	OperationalStatus string       `json:"operational_status"`
	HealthStatus      HealthStatus `json:"health_status"`
	Version           string       `json:"version"`
}

// HealthStatus is the internally tagged health enum: {"status":"healthy"},
// {"status":"degraded","reason":"..."} or {"status":"unhealthy","reason":"..."}.
type HealthStatus struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Action is what ends the condition (Action*), where the hive knows
	// one: additive, absent when healthy.
	Action string `json:"action,omitempty"`
}

// Actions of HealthStatus.Action, from the least to the most drastic.
const (
	ActionNone               = "none"
	ActionRestartApp         = "restart_app"
	ActionResetGPU           = "reset_gpu"
	ActionReboot             = "reboot"
	ActionHardwareInspection = "hardware_inspection"
)

// Health values of HealthStatus.Status, from best to worst.
const (
	HealthHealthy   = "healthy"
	HealthDegraded  = "degraded"
	HealthUnhealthy = "unhealthy"
)

// Healthy is the health of a hive, or a GPU, with nothing wrong.
var Healthy = HealthStatus{Status: HealthHealthy}

// Worse reports whether h is worse than o (unhealthy > degraded >
// healthy); an unknown status counts as degraded.
func (h HealthStatus) Worse(o HealthStatus) bool { return healthRank(h.Status) > healthRank(o.Status) }

func healthRank(s string) int {
	switch s {
	case HealthHealthy:
		return 0
	case HealthUnhealthy:
		return 2
	}
	return 1
}

// ProcessStats is one worker's sample. Every field is always present; the
// Queen drops a worker with a missing or mistyped field.
type ProcessStats struct {
	PID         uint32  `json:"pid"`
	Group       string  `json:"group"`
	Instance    string  `json:"instance"`
	CPUPct      Float   `json:"cpu_pct"`   // 100 = one full core
	RSSMB       uint64  `json:"rss_mb"`    // MiB
	IOReadMBs   Float   `json:"io_r_mb_s"` // 10^6 bytes per second
	IOWriteMBs  Float   `json:"io_w_mb_s"`
	UptimeS     uint64  `json:"uptime_s"`
	GPUUtilPct  Float   `json:"gpu_util_pct"`
	VRAMMB      uint64  `json:"vram_mb"`       // MiB held by the worker
	TotalVRAMMB uint64  `json:"total_vram_mb"` // MiB of the GPUs it uses
	Model       *string `json:"model"`         // null when unknown
	// GPUIndices is additive: the GPUs the worker holds memory on, by
	// index (node.gpus[].index); never null.
	GPUIndices []int `json:"gpu_indices"`
	// State is additive: WorkerStarting, WorkerReady, WorkerUnresponsive
	// for a worker with a port the hive probes, WorkerRunning for one
	// without, WorkerExited for one last event of a worker the hive
	// spawned, with Exit.
	State string `json:"state"`
	// GPUUtilSource is additive: where GPUUtilPct comes from. GPUSampled:
	// the driver's samples of the worker's processes; GPUNoSample: it holds
	// memory on a GPU and the driver had no sample of it (time-slicing: the
	// lighter process often has none), so GPUUtilPct 0 is "unknown", not
	// idle; GPUDevice: the device mean (no per-process figures: MIG, vGPU,
	// nvidia-smi without pmon); GPUNone: on no GPU.
	GPUUtilSource string      `json:"gpu_util_source"`
	Exit          *WorkerExit `json:"exit,omitempty"`
	// Load is additive: the engine's own load, read from its metrics
	// (docs/PROTOCOL.md, "Engine load"); absent where the engine answers
	// nothing the hive knows.
	Load *WorkerLoad `json:"load,omitempty"`
}

// WorkerLoad is an engine's load as the hive normalises it. A figure the
// engine does not export is absent, never 0.
type WorkerLoad struct {
	Engine           string  `json:"engine"` // vllm, sglang, llamacpp, tgi
	Queue            *uint64 `json:"queue,omitempty"`
	Running          *uint64 `json:"running,omitempty"`
	KVUsedRatio      *Float  `json:"kv_used_ratio,omitempty"` // 0 to 1
	KVUsedTokens     *uint64 `json:"kv_used_tokens,omitempty"`
	KVCapacityTokens *uint64 `json:"kv_capacity_tokens,omitempty"`
	PromptTPS        *Float  `json:"prompt_tps,omitempty"` // tokens/s between the last two reads
	GenTPS           *Float  `json:"gen_tps,omitempty"`
	Preemptions      *uint64 `json:"preemptions,omitempty"` // since the engine started
	// AgeMS is how old the figures are: from the read they came from to
	// the event.
	AgeMS uint64 `json:"age_ms"`
}

// LoadEvent is published on SubjectLoad (SSE event "load") when a
// worker's queue or running count moved by workers.load-push-delta, between
// two telemetry events.
type LoadEvent struct {
	HiveID    string         `json:"hive_id"`
	Timestamp string         `json:"timestamp"`
	Workers   []WorkerLoadOf `json:"workers"`
}

// WorkerLoadOf is one worker's load in a LoadEvent.
type WorkerLoadOf struct {
	PID  uint32     `json:"pid"`
	Load WorkerLoad `json:"load"`
}

// Values of ProcessStats.GPUUtilSource.
const (
	GPUSampled  = "sampled"
	GPUNoSample = "no_sample"
	GPUDevice   = "device"
	GPUNone     = "none"
)

// Worker states (ProcessStats.State).
const (
	WorkerStarting     = "starting"     // no healthy answer yet since it started
	WorkerStalled      = "stalled"      // requests running, no progress for workers.stall-after
	WorkerReady        = "ready"        // its health endpoint answers 2xx
	WorkerUnresponsive = "unresponsive" // answered before, failing for a while now
	WorkerRunning      = "running"      // no port to probe: it exists
	WorkerExited       = "exited"       // gone; one last event
	WorkerFailed       = "failed"       // the GPU driver blamed it for an application Xid (exit.xid)
)

// WorkerExit is how a spawned worker ended: its exit code, or the signal
// that ended it; for a failed worker, the Xid the driver blamed it for.
type WorkerExit struct {
	Code   *int   `json:"code,omitempty"`
	Signal string `json:"signal,omitempty"`
	XID    uint64 `json:"xid,omitempty"`
}

// Float is a float64 that always encodes as a JSON number with a fraction
// ("0.0", not "0"), as the original's serde did, and never as NaN or Inf,
// which JSON cannot carry.
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	b := strconv.AppendFloat(make([]byte, 0, 24), v, 'f', -1, 64)
	for _, c := range b {
		if c == '.' {
			return b, nil
		}
	}
	return append(b, '.', '0'), nil
}

// Round returns v rounded to the given number of decimals.
func Round(v float64, decimals int) Float {
	p := math.Pow10(decimals)
	return Float(math.Round(v*p) / p)
}

// SSETimestamp formats t as the SSE telemetry does: RFC 3339 in UTC with
// "+00:00" rather than "Z".
func SSETimestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.999999999-07:00")
}

// PushTimestamp formats t as the legacy POST body does: RFC 3339 with "Z".
func PushTimestamp(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// WorkerEvent announces a worker process started or stopped by a module
// other than the collector (jobs).
type WorkerEvent struct {
	PID      int    `json:"pid"`
	Group    string `json:"group"`
	Instance string `json:"instance"`
	Model    string `json:"model,omitempty"`
	// Exit, on SubjectWorkersStopped, is how a worker the hive spawned
	// ended, when it was its child.
	Exit *WorkerExit `json:"exit,omitempty"`
}

// WorkerList answers SubjectWorkersList.
type WorkerList struct {
	Workers []WorkerEvent `json:"workers"`
}
