package collector

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rbee/hive/internal/metric"
)

// workerCounter is what Prometheus wants of one worker: counters in base
// units, where the telemetry event has rates in the original's units. The
// totals are summed over its processes from deltas, so a child that exits
// never makes them go back.
type workerCounter struct {
	pid                       uint32
	group, instance, model    string
	cpuSeconds                float64
	residentBytes             uint64
	ioReadBytes, ioWriteBytes uint64
	startTimeSeconds          float64
	gpuUtilRatio              float64
	gpuMemoryBytes            uint64
}

var workerLabels = []string{"group", "instance", "model", "pid"}

func workerDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, workerLabels, nil)
}

var (
	workerCPU     = workerDesc("hive_worker_cpu_seconds_total", "CPU time used by the worker's processes.")
	workerRSS     = workerDesc("hive_worker_resident_memory_bytes", "Resident memory of the worker's processes.")
	workerRead    = workerDesc("hive_worker_io_read_bytes_total", "Bytes the worker's processes read from storage.")
	workerWrite   = workerDesc("hive_worker_io_write_bytes_total", "Bytes the worker's processes wrote to storage.")
	workerGPUUtil = workerDesc("hive_worker_gpu_utilization_ratio", "Utilisation of the GPUs the worker uses, 0 to 1.")
	workerGPUMem  = workerDesc("hive_worker_gpu_memory_bytes", "GPU memory the worker's processes hold.")
	workerStart   = workerDesc("hive_worker_start_time_seconds", "Start time of the worker's main process, Unix seconds.")
)

// metrics are the collector's own series. The tick goroutine writes them;
// a scrape reads them.
type metrics struct {
	tick         prometheus.Histogram
	sampleErrors prometheus.Counter // a worker source or the GPU query failed
	published    prometheus.Counter

	mu     sync.Mutex
	latest []workerCounter // the last tick's workers
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		tick: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hive_collector_tick_duration_seconds",
			Help: "Time one collector tick took.",
			// From a few workers (~1 ms) to a tick that overran a 1 s
			// interval.
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
		}),
		sampleErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hive_collector_sample_errors_total",
			Help: "Worker sources or GPU queries that failed.",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hive_telemetry_events_published_total",
			Help: "Telemetry events the collector published.",
		}),
	}
	if err := metric.Register(reg, m.tick, m.sampleErrors, m.published, (*workerSeries)(m)); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) setWorkers(ws []workerCounter) {
	m.mu.Lock()
	m.latest = ws
	m.mu.Unlock()
}

// workerSeries are the per-worker series, built at scrape time from the
// latest tick only: a worker that is gone is gone from the next scrape.
type workerSeries metrics

// Describe implements prometheus.Collector.
func (s *workerSeries) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{workerCPU, workerRSS, workerRead, workerWrite, workerGPUUtil, workerGPUMem, workerStart} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *workerSeries) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	latest := s.latest
	s.mu.Unlock()
	for _, w := range latest {
		lv := []string{w.group, w.instance, w.model, strconv.FormatUint(uint64(w.pid), 10)}
		ch <- prometheus.MustNewConstMetric(workerCPU, prometheus.CounterValue, w.cpuSeconds, lv...)
		ch <- prometheus.MustNewConstMetric(workerRSS, prometheus.GaugeValue, float64(w.residentBytes), lv...)
		ch <- prometheus.MustNewConstMetric(workerRead, prometheus.CounterValue, float64(w.ioReadBytes), lv...)
		ch <- prometheus.MustNewConstMetric(workerWrite, prometheus.CounterValue, float64(w.ioWriteBytes), lv...)
		ch <- prometheus.MustNewConstMetric(workerGPUUtil, prometheus.GaugeValue, w.gpuUtilRatio, lv...)
		ch <- prometheus.MustNewConstMetric(workerGPUMem, prometheus.GaugeValue, float64(w.gpuMemoryBytes), lv...)
		ch <- prometheus.MustNewConstMetric(workerStart, prometheus.GaugeValue, w.startTimeSeconds, lv...)
	}
}
