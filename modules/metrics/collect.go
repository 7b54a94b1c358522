package metrics

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rbee/hive/bus"
)

var workerLabels = []string{"hive_id", "group", "instance", "model", "pid"}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// The metrics of this module. Worker series are built from the latest
// tick only, so a worker that is gone is gone from the next scrape.
var (
	workerCPU      = desc("hive_worker_cpu_seconds_total", "CPU time used by the worker's processes.", workerLabels...)
	workerRSS      = desc("hive_worker_resident_memory_bytes", "Resident memory of the worker's processes.", workerLabels...)
	workerRead     = desc("hive_worker_io_read_bytes_total", "Bytes the worker's processes read from storage.", workerLabels...)
	workerWrite    = desc("hive_worker_io_write_bytes_total", "Bytes the worker's processes wrote to storage.", workerLabels...)
	workerGPUUtil  = desc("hive_worker_gpu_utilization_ratio", "Utilisation of the GPUs the worker uses, 0 to 1.", workerLabels...)
	workerGPUMem   = desc("hive_worker_gpu_memory_bytes", "GPU memory the worker's processes hold.", workerLabels...)
	workerStart    = desc("hive_worker_start_time_seconds", "Start time of the worker's main process, Unix seconds.", workerLabels...)
	sseSubscribers = desc("hive_sse_subscribers", "Clients on the telemetry SSE stream.", "hive_id")
	published      = desc("hive_telemetry_events_published_total", "Telemetry events the collector published.", "hive_id")
	sseDropped     = desc("hive_sse_events_dropped_total", "Events not delivered to an SSE client that was too slow.", "hive_id")
	sseKicked      = desc("hive_sse_subscribers_kicked_total", "SSE clients disconnected for being too slow.", "hive_id")
	sseStalls      = desc("hive_sse_write_stalls_total", "Events an SSE client's socket could not take at once (then queued for it).", "hive_id")
	httpDenied     = desc("hive_http_requests_denied_total", "HTTP requests refused by the access checks.", "hive_id")
	httpShed       = desc("hive_http_connections_shed_total", "HTTP connections refused past a connection cap.", "hive_id")
	tickSeconds    = desc("hive_collector_tick_duration_seconds", "Time one collector tick took.", "hive_id")
	sampleErrors   = desc("hive_collector_sample_errors_total", "Worker sources or GPU queries that failed.", "hive_id")
	natsObservers  = desc("hive_nats_observers", "External NATS clients connected.", "hive_id")
	hubConnected   = desc("hive_hub_connected", "1 while the leafnode to the hub is up.", "hive_id")
	bridgeDropped  = desc("hive_nats_bridge_dropped_total", "Exported messages dropped because external NATS clients were too slow.", "hive_id")
	jobsRunning    = desc("hive_jobs_running", "Jobs running now.", "hive_id")
	jobsTotal      = desc("hive_jobs_total", "Finished jobs by operation and result.", "hive_id", "operation", "result")
	pushFailures   = desc("hive_discovery_push_failures_total", "Telemetry pushes to the Queen that failed.", "hive_id")
	statsMissing   = desc("hive_metrics_module_unanswered", "1 when a module did not answer this scrape in time.", "hive_id", "module")
)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{workerCPU, workerRSS, workerRead, workerWrite, workerGPUUtil, workerGPUMem, workerStart,
		sseSubscribers, published, sseDropped, sseKicked, sseStalls, httpDenied, httpShed, tickSeconds, sampleErrors,
		natsObservers, hubConnected, bridgeDropped, jobsRunning, jobsTotal, pushFailures, statsMissing} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the latest worker counters, then
// every module's counters, asked in parallel.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	id := m.cfg.HiveID
	m.mu.Lock()
	latest := m.latest
	m.mu.Unlock()
	for _, w := range latest.Workers {
		lv := []string{id, w.Group, w.Instance, w.Model, itoa(w.PID)}
		ch <- prometheus.MustNewConstMetric(workerCPU, prometheus.CounterValue, w.CPUSecondsTotal, lv...)
		ch <- prometheus.MustNewConstMetric(workerRSS, prometheus.GaugeValue, float64(w.ResidentBytes), lv...)
		ch <- prometheus.MustNewConstMetric(workerRead, prometheus.CounterValue, float64(w.IOReadBytesTotal), lv...)
		ch <- prometheus.MustNewConstMetric(workerWrite, prometheus.CounterValue, float64(w.IOWriteBytesTotal), lv...)
		ch <- prometheus.MustNewConstMetric(workerGPUUtil, prometheus.GaugeValue, w.GPUUtilRatio, lv...)
		ch <- prometheus.MustNewConstMetric(workerGPUMem, prometheus.GaugeValue, float64(w.GPUMemoryBytes), lv...)
		ch <- prometheus.MustNewConstMetric(workerStart, prometheus.GaugeValue, w.StartTimeSeconds, lv...)
	}

	b := m.bus
	if srv := b.EdgeServer(); srv != nil {
		ch <- prometheus.MustNewConstMetric(natsObservers, prometheus.GaugeValue, float64(max(srv.NumClients()-1, 0)), id) // less the bridge
	} else {
		ch <- prometheus.MustNewConstMetric(natsObservers, prometheus.GaugeValue, 0, id)
	}
	hub := 0.0
	if b.HubConnected() {
		hub = 1
	}
	ch <- prometheus.MustNewConstMetric(hubConnected, prometheus.GaugeValue, hub, id)
	ch <- prometheus.MustNewConstMetric(bridgeDropped, prometheus.CounterValue, float64(b.BridgeDropped()), id)

	var (
		wg                          sync.WaitGroup
		col                         bus.CollectorStats
		gw                          bus.GatewayStats
		jobs                        bus.JobsStats
		disc                        bus.DiscoveryStats
		okCol, okGW, okJobs, okDisc bool
	)
	wg.Go(func() { col, okCol = askStats[bus.CollectorStats](m, "collector") })
	wg.Go(func() { gw, okGW = askStats[bus.GatewayStats](m, "gateway") })
	wg.Go(func() { jobs, okJobs = askStats[bus.JobsStats](m, "jobs") })
	wg.Go(func() { disc, okDisc = askStats[bus.DiscoveryStats](m, "discovery") })
	wg.Wait()
	for _, a := range []struct {
		name string
		ok   bool
	}{{"collector", okCol}, {"gateway", okGW}, {"jobs", okJobs}, {"discovery", okDisc}} {
		v := 0.0
		if !a.ok {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(statsMissing, prometheus.GaugeValue, v, id, a.name)
	}
	if okCol {
		buckets := make(map[float64]uint64, len(col.TickSeconds.Bounds))
		for i, bound := range col.TickSeconds.Bounds {
			buckets[bound] = col.TickSeconds.Counts[i]
		}
		ch <- prometheus.MustNewConstHistogram(tickSeconds, col.TickSeconds.Count, col.TickSeconds.Sum, buckets, id)
		ch <- prometheus.MustNewConstMetric(sampleErrors, prometheus.CounterValue, float64(col.SampleErrors), id)
		ch <- prometheus.MustNewConstMetric(published, prometheus.CounterValue, float64(col.Published), id)
	}
	if okGW {
		ch <- prometheus.MustNewConstMetric(sseSubscribers, prometheus.GaugeValue, float64(gw.Subscribers), id)
		ch <- prometheus.MustNewConstMetric(sseDropped, prometheus.CounterValue, float64(gw.Dropped), id)
		ch <- prometheus.MustNewConstMetric(sseKicked, prometheus.CounterValue, float64(gw.Kicked), id)
		ch <- prometheus.MustNewConstMetric(sseStalls, prometheus.CounterValue, float64(gw.Stalls), id)
		ch <- prometheus.MustNewConstMetric(httpDenied, prometheus.CounterValue, float64(gw.Denied), id)
		ch <- prometheus.MustNewConstMetric(httpShed, prometheus.CounterValue, float64(gw.ConnsShed), id)
	}
	if okJobs {
		ch <- prometheus.MustNewConstMetric(jobsRunning, prometheus.GaugeValue, float64(jobs.Running), id)
		for op, byResult := range jobs.Totals {
			for result, n := range byResult {
				ch <- prometheus.MustNewConstMetric(jobsTotal, prometheus.CounterValue, float64(n), id, op, result)
			}
		}
	}
	if okDisc {
		ch <- prometheus.MustNewConstMetric(pushFailures, prometheus.CounterValue, float64(disc.PushFailures), id)
	}
}

// askStats asks a module for its counters on hive.stats.<module>, within
// StatsTimeout; ok is false when it did not answer in time.
func askStats[T any](m *Metrics, module string) (v T, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.StatsTimeout)
	defer cancel()
	v, err := bus.Request[struct{}, T](ctx, m.nc, bus.StatsSubject(module), struct{}{})
	if err != nil {
		m.log.Debug("module stats unanswered", "module", module, "err", err)
		return v, false
	}
	return v, true
}
