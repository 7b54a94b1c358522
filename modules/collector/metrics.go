package collector

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rbee/hive/bus/wire"
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
	gpuUtilSource             string // wire.ProcessStats.GPUUtilSource
	port                      int    // the worker's port, 0 for none (Worker.Port)
	load                      *wire.WorkerLoad
}

// workerLabels name a worker's series. The telemetry's instance is
// worker_instance here: Prometheus puts its own instance label on every
// target, and a scraped "instance" would be stored as exported_instance.
var workerLabels = []string{"group", "worker_instance", "model", "pid"}

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
	// workerGPUSampled says whether hive_worker_gpu_utilization_ratio is
	// the driver's samples of the worker (1) or a stand-in (0: no sample
	// in the window, or the device's figure); absent for a worker on no GPU.
	workerQueue      = workerDesc("hive_worker_queue", "Requests waiting in the worker's engine (its own metrics).")
	workerRunning    = workerDesc("hive_worker_running", "Requests running in the worker's engine.")
	workerKV         = workerDesc("hive_worker_kv_used_ratio", "Share of the worker's engine's KV cache in use, 0 to 1.")
	workerGenTPS     = workerDesc("hive_worker_generation_tokens_per_second", "Tokens the worker's engine generated per second between its last two reads.")
	workerGPUSampled = workerDesc("hive_worker_gpu_utilization_sampled", "1 when the worker's GPU utilisation is from the driver's samples of its processes, 0 when the driver had none (gpu_util_source).")
)

// metrics are the collector's own series. The tick goroutine writes them;
// a scrape reads them.
type metrics struct {
	tick         prometheus.Histogram
	sampleErrors prometheus.Counter // a worker source or the GPU query failed
	published    prometheus.Counter
	// publishErrors counts events the bus refused; trimmed counts events
	// over wire.MaxEventBytes sent without some workers, omitted how many
	// the last event left out; cmdlinesCut command lines over maxCmdline.
	publishErrors prometheus.Counter
	trimmed       prometheus.Counter
	omitted       prometheus.Gauge
	cmdlinesCut   prometheus.Counter

	xids          *prometheus.CounterVec // by gpu index and code
	gpuWedged     prometheus.Counter
	healthChanges *prometheus.CounterVec // by the new status
	stateChanges  *prometheus.CounterVec // workers' state changes, by the new state
	probes        *prometheus.CounterVec // health probes, by result
	engineErrors  *prometheus.CounterVec // engine reads that failed, by reason
	pagesCut      prometheus.Counter
	loadEvents    prometheus.Counter

	mu     sync.Mutex
	states map[string]int  // the last tick's workers by state
	latest []workerCounter // the last tick's workers
	gpus   []wire.NodeGPU  // the last tick's GPUs
	health wire.HealthStatus
}

func newMetrics(reg prometheus.Registerer, gpuSource string) (*metrics, error) {
	m := &metrics{
		tick: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hive_collector_tick_duration_seconds",
			Help: "Time one collector tick took.",
			// From a few workers (~1 ms) to a tick that overran a 1 s
			// interval.
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
		}),
		sampleErrors: counter("hive_collector_sample_errors_total", "Worker sources or GPU queries that failed."),
		published:    counter("hive_telemetry_events_published_total", "Telemetry events the collector published."),
	}
	m.publishErrors = counter("hive_telemetry_publish_errors_total", "Telemetry events the collector could not publish on the bus.")
	m.trimmed = counter("hive_telemetry_events_trimmed_total", "Telemetry events over the size bound, published without the workers with the highest PIDs.")
	m.omitted = gauge("hive_telemetry_workers_omitted", "Workers the last telemetry event left out to stay within its size bound.")
	m.cmdlinesCut = counter("hive_collector_cmdlines_cut_total", "Command lines longer than 16 KiB, read and kept cut.")
	m.xids = counterVec("hive_gpu_xid_errors_total", "XID errors the driver reported, by GPU index and XID code.", "gpu", "xid")
	m.gpuWedged = counter("hive_gpu_source_wedged_total", "Times the GPU source wedged: a driver call did not return within the tick's deadline (once per episode, until it returns).")
	m.healthChanges = counterVec("hive_health_changes_total", "Changes of the hive's health, by the status changed to.", "status")
	m.stateChanges = counterVec("hive_worker_state_changes_total", "Changes of a worker's state (starting, ready, unresponsive, stalled, running, exited), by the state changed to.", "state")
	m.probes = counterVec("hive_worker_probes_total", "Health probes of workers, by result: ok, failed (asked; refused, late or not 2xx), not_listening (nothing listened on the port: answered without a connection).", "result")
	m.engineErrors = counterVec("hive_engine_scrape_errors_total", "Reads of a worker's engine metrics that gave no load, by reason: timeout, refused, status (not 2xx; redirects are not followed), no_engine (no family of a known engine), error.", "reason")
	m.pagesCut = counter("hive_engine_pages_cut_total", "Engine metrics pages longer than workers.engine-max-bytes, read up to it.")
	m.loadEvents = counter("hive_load_events_published_total", "hive.load events published between ticks, when a worker's queue or running count moved by workers.load-push-delta.")
	source := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "hive_gpu_source_info",
		Help:        "How the hive reads its GPUs (nvml, smi, smi-device, none, replay:<dir>); always 1.",
		ConstLabels: prometheus.Labels{"source": gpuSource},
	})
	source.Set(1)
	if err := metric.Register(reg, source, m.tick, m.sampleErrors, m.published, m.publishErrors, m.trimmed, m.omitted,
		m.cmdlinesCut, m.xids, m.gpuWedged, m.healthChanges, m.stateChanges, m.probes, m.engineErrors, m.pagesCut,
		m.loadEvents, (*workerSeries)(m), (*gpuSeries)(m)); err != nil {
		return nil, err
	}
	return m, nil
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

func gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

func (m *metrics) setWorkers(ws []workerCounter, stats []wire.ProcessStats) {
	states := map[string]int{}
	for _, w := range stats {
		states[w.State]++
	}
	m.mu.Lock()
	m.latest, m.states = ws, states
	m.mu.Unlock()
}

var workersByState = prometheus.NewDesc("hive_workers", "Workers in the last event, by state (starting, ready, unresponsive, stalled, running, exited).", []string{"state"}, nil)

func u64(p *uint64) *float64 {
	if p == nil {
		return nil
	}
	v := float64(*p)
	return &v
}

func f64(p *wire.Float) *float64 {
	if p == nil {
		return nil
	}
	v := float64(*p)
	return &v
}

// workerSeries are the per-worker series, built at scrape time from the
// latest tick only: a worker that is gone is gone from the next scrape.
type workerSeries metrics

// Describe implements prometheus.Collector.
func (s *workerSeries) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{workerCPU, workerRSS, workerRead, workerWrite, workerGPUUtil, workerGPUMem, workerStart, workerGPUSampled, workerQueue, workerRunning, workerKV, workerGenTPS, workersByState} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *workerSeries) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	latest, states := s.latest, s.states
	s.mu.Unlock()
	// Every state, zero too: an alert on unresponsive workers needs the
	// series to exist while there are none.
	for _, st := range []string{wire.WorkerStarting, wire.WorkerReady, wire.WorkerUnresponsive, wire.WorkerStalled, wire.WorkerRunning, wire.WorkerExited} {
		ch <- prometheus.MustNewConstMetric(workersByState, prometheus.GaugeValue, float64(states[st]), st)
	}
	for _, w := range latest {
		lv := []string{w.group, w.instance, w.model, strconv.FormatUint(uint64(w.pid), 10)}
		ch <- prometheus.MustNewConstMetric(workerCPU, prometheus.CounterValue, w.cpuSeconds, lv...)
		ch <- prometheus.MustNewConstMetric(workerRSS, prometheus.GaugeValue, float64(w.residentBytes), lv...)
		ch <- prometheus.MustNewConstMetric(workerRead, prometheus.CounterValue, float64(w.ioReadBytes), lv...)
		ch <- prometheus.MustNewConstMetric(workerWrite, prometheus.CounterValue, float64(w.ioWriteBytes), lv...)
		ch <- prometheus.MustNewConstMetric(workerGPUUtil, prometheus.GaugeValue, w.gpuUtilRatio, lv...)
		ch <- prometheus.MustNewConstMetric(workerGPUMem, prometheus.GaugeValue, float64(w.gpuMemoryBytes), lv...)
		ch <- prometheus.MustNewConstMetric(workerStart, prometheus.GaugeValue, w.startTimeSeconds, lv...)
		if l := w.load; l != nil {
			for _, g := range []struct {
				d *prometheus.Desc
				v *float64
			}{{workerQueue, u64(l.Queue)}, {workerRunning, u64(l.Running)}, {workerKV, f64(l.KVUsedRatio)}, {workerGenTPS, f64(l.GenTPS)}} {
				if g.v != nil {
					ch <- prometheus.MustNewConstMetric(g.d, prometheus.GaugeValue, *g.v, lv...)
				}
			}
		}
		if w.gpuUtilSource != "" && w.gpuUtilSource != wire.GPUNone {
			sampled := 0.0
			if w.gpuUtilSource == wire.GPUSampled {
				sampled = 1
			}
			ch <- prometheus.MustNewConstMetric(workerGPUSampled, prometheus.GaugeValue, sampled, lv...)
		}
	}
}
