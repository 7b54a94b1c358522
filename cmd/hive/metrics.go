package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rbee/hive/internal/metric"
)

// newRegistry is the hive's one metrics registry, served on GET /metrics.
// The returned Registerer is what each module registers its own series
// with: it adds the hive_id label to every one of them.
func newRegistry(hiveID, version, commit string) (*prometheus.Registry, prometheus.Registerer, error) {
	reg := prometheus.NewRegistry()
	hive := prometheus.WrapRegistererWith(prometheus.Labels{"hive_id": hiveID}, reg)
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "hive_build_info",
		Help:        "The hive's version and commit; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "commit": commit},
	})
	build.Set(1)
	if err := metric.Register(reg, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, nil, err
	}
	if err := metric.Register(hive, build); err != nil {
		return nil, nil, err
	}
	return reg, hive, nil
}
