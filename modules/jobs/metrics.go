package jobs

import "github.com/prometheus/client_golang/prometheus"

// register exports the jobs running and the jobs finished, by operation
// and result (done, error, cancelled).
func (m *Jobs) register(reg prometheus.Registerer) error {
	m.finishedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hive_jobs_total",
		Help: "Finished jobs by operation and result.",
	}, []string{"operation", "result"})
	running := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hive_jobs_running", Help: "Jobs running now."}, func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		return float64(m.running)
	})
	for _, c := range []prometheus.Collector{m.finishedTotal, running} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
