package bus

// Subjects of the hive's own measurements, for the metrics module. None is
// exported to observers or the hub.
const (
	// SubjectWorkerCounters carries one WorkerCounters per collector tick,
	// published right after the telemetry event of the same tick.
	SubjectWorkerCounters = "hive.metrics.workers"
	// SubjectMetricsScrape is request/reply: an empty body answered with
	// MetricsScrape, the Prometheus text exposition of the hive.
	SubjectMetricsScrape = "hive.metrics.scrape"
)

// StatsSubject is where a module answers an empty request with its
// counters: hive.stats.collector (CollectorStats), hive.stats.gateway
// (GatewayStats), hive.stats.jobs (JobsStats), hive.stats.discovery
// (DiscoveryStats).
func StatsSubject(module string) string { return "hive.stats." + module }

// WorkerCounters are the cumulative figures behind one tick's telemetry:
// what Prometheus wants (counters in base units), where the telemetry event
// has rates in the original's units.
type WorkerCounters struct {
	HiveID  string          `json:"hive_id"`
	Workers []WorkerCounter `json:"workers"`
}

// WorkerCounter is one worker. The totals are summed over its processes
// from deltas, so a child that exits never makes them go back.
type WorkerCounter struct {
	PID               uint32  `json:"pid"`
	Group             string  `json:"group"`
	Instance          string  `json:"instance"`
	Model             string  `json:"model"`
	CPUSecondsTotal   float64 `json:"cpu_seconds_total"`
	ResidentBytes     uint64  `json:"resident_bytes"`
	IOReadBytesTotal  uint64  `json:"io_read_bytes_total"`
	IOWriteBytesTotal uint64  `json:"io_write_bytes_total"`
	StartTimeSeconds  float64 `json:"start_time_seconds"`
	GPUUtilRatio      float64 `json:"gpu_utilization_ratio"`
	GPUMemoryBytes    uint64  `json:"gpu_memory_bytes"`
}

// Histogram is a cumulative histogram as Prometheus keeps one: Counts[i]
// observations were <= Bounds[i].
type Histogram struct {
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
	Count  uint64    `json:"count"`
	Sum    float64   `json:"sum"`
}

// CollectorStats answers StatsSubject("collector").
type CollectorStats struct {
	TickSeconds  Histogram `json:"tick_seconds"`
	SampleErrors uint64    `json:"sample_errors"`
	Published    uint64    `json:"published"`
}

// GatewayStats answers StatsSubject("gateway"). Every field is a counter
// or a gauge the gateway keeps as it goes: answering costs the same with
// ten SSE clients or ten thousand.
type GatewayStats struct {
	Subscribers int    `json:"subscribers"`
	Published   uint64 `json:"published"`
	Dropped     uint64 `json:"dropped"`
	Kicked      uint64 `json:"kicked"`
	Stalls      uint64 `json:"stalls"` // writes a client's socket could not take whole
	Denied      uint64 `json:"denied"`
	ConnsShed   uint64 `json:"conns_shed"`
	ConnsOpen   int    `json:"conns_open"`
}

// JobsStats answers StatsSubject("jobs"). Totals counts finished jobs by
// operation, then by result: done, error or cancelled.
type JobsStats struct {
	Running int                          `json:"running"`
	Workers int                          `json:"workers"`
	Totals  map[string]map[string]uint64 `json:"totals"`
}

// DiscoveryStats answers StatsSubject("discovery").
type DiscoveryStats struct {
	PushFailures uint64 `json:"push_failures"`
	Refused      uint64 `json:"refused"`
}

// MetricsScrape answers SubjectMetricsScrape.
type MetricsScrape struct {
	ContentType string `json:"content_type"`
	Body        string `json:"body"`
}
