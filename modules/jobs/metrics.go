package jobs

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rbee/hive/internal/metric"
)

// register exports the jobs running and the jobs finished, by operation
// and result (done, error, cancelled).
func (m *Jobs) register(reg prometheus.Registerer) error {
	m.finishedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hive_jobs_total",
		Help: "Finished jobs by operation and result.",
	}, []string{"operation", "result"})
	return metric.Register(reg, m.finishedTotal,
		metric.Counter("hive_worker_logs_rotated_total", "Spawned workers' logs copied to <log>.1 and truncated at their size bound.", m.logsRotated.Load),
		metric.Counter("hive_worker_state_write_errors_total", "Writes of the spawned workers' state file that failed (a spawn it cannot record is stopped and refused).", m.procs.stateErrors.Load),
		metric.Gauge("hive_jobs_running", "Jobs running now.", func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			return float64(m.running)
		}))
}
