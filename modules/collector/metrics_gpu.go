package collector

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rbee/hive/bus/wire"
)

func (m *metrics) setGPUs(gpus []wire.NodeGPU, health wire.HealthStatus) {
	m.mu.Lock()
	m.gpus, m.health = gpus, health
	m.mu.Unlock()
}

var gpuLabels = []string{"gpu", "uuid"}

func gpuDesc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(gpuLabels[:2:2], extra...), nil)
}

var (
	gpuUtil     = gpuDesc("hive_gpu_utilization_ratio", "Utilisation of the GPU, 0 to 1.")
	gpuMemUsed  = gpuDesc("hive_gpu_memory_used_bytes", "GPU memory in use.")
	gpuMemTotal = gpuDesc("hive_gpu_memory_total_bytes", "GPU memory.")
	gpuTemp     = gpuDesc("hive_gpu_temperature_celsius", "GPU core temperature.")
	gpuPower    = gpuDesc("hive_gpu_power_watts", "GPU power draw.")
	gpuPowerCap = gpuDesc("hive_gpu_power_limit_watts", "GPU power limit.")
	gpuThrottle = gpuDesc("hive_gpu_throttle_reasons", "1 for each clock-event (throttle) reason active on the GPU.", "reason")
	gpuECC      = gpuDesc("hive_gpu_ecc_uncorrected_errors", "Volatile uncorrectable ECC errors since the driver loaded.")
	gpuHealth   = gpuDesc("hive_gpu_health", "The GPU's health: 0 healthy, 1 degraded, 2 unhealthy (docs/GPUS.md: GPU health).")
	gpuMemResv  = gpuDesc("hive_gpu_memory_reserved_bytes", "GPU memory the driver reserves for itself (not in hive_gpu_memory_used_bytes, as nvidia-smi counts; NVML v2 memory info).")
	gpuMemFree  = gpuDesc("hive_gpu_memory_free_bytes", "GPU memory neither used nor reserved.")
	gpuUnattrib = gpuDesc("hive_gpu_unattributed_utilization_ratio", "The GPU's utilisation less what the driver's samples of the workers' processes account for, 0 to 1.")
	hiveHealth  = prometheus.NewDesc("hive_health", "The hive's health, the worst of its GPUs' and its own: 0 healthy, 1 degraded, 2 unhealthy.", nil, nil)
	// gpmRatios are Hopper's GPM figures (docs/GPUS.md), 0 to 1: what
	// the device-wide utilisation cannot say (a one-thread kernel is 100 %
	// utilised and 1 % SM-active).
	gpmRatios = []struct {
		desc *prometheus.Desc
		of   func(wire.NodeGPU) *wire.Float
	}{
		{gpuDesc("hive_gpu_sm_active_ratio", "Share of the SMs' time with a warp resident (GPM), 0 to 1."), func(g wire.NodeGPU) *wire.Float { return g.SMActivePct }},
		{gpuDesc("hive_gpu_sm_occupancy_ratio", "Resident warps over the SMs' maximum (GPM), 0 to 1."), func(g wire.NodeGPU) *wire.Float { return g.SMOccupancyPct }},
		{gpuDesc("hive_gpu_tensor_active_ratio", "Share of time the tensor cores were busy (GPM), 0 to 1."), func(g wire.NodeGPU) *wire.Float { return g.TensorActivePct }},
		{gpuDesc("hive_gpu_dram_bandwidth_ratio", "DRAM bandwidth used over its peak (GPM), 0 to 1."), func(g wire.NodeGPU) *wire.Float { return g.DRAMBWPct }},
		{gpuDesc("hive_gpu_fp16_active_ratio", "Share of time the FP16 pipe was busy (GPM), 0 to 1."), func(g wire.NodeGPU) *wire.Float { return g.FP16ActivePct }},
		{gpuDesc("hive_gpu_fp32_active_ratio", "Share of time the FP32 pipe was busy (GPM), 0 to 1."), func(g wire.NodeGPU) *wire.Float { return g.FP32ActivePct }},
	}
	healthValues = map[string]float64{wire.HealthHealthy: 0, wire.HealthDegraded: 1, wire.HealthUnhealthy: 2}
)

// gpuSeries are the per-GPU series, built at scrape time from the last
// tick, like the workers'.
type gpuSeries metrics

// Describe implements prometheus.Collector.
func (s *gpuSeries) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{gpuUtil, gpuMemUsed, gpuMemTotal, gpuMemResv, gpuMemFree, gpuUnattrib, gpuTemp, gpuPower, gpuPowerCap, gpuThrottle, gpuECC, gpuHealth, hiveHealth} {
		ch <- d
	}
	for _, r := range gpmRatios {
		ch <- r.desc
	}
}

// Collect implements prometheus.Collector.
func (s *gpuSeries) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	gpus, health := s.gpus, s.health
	s.mu.Unlock()
	if health.Status != "" {
		ch <- prometheus.MustNewConstMetric(hiveHealth, prometheus.GaugeValue, healthValues[health.Status])
	}
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	for _, g := range gpus {
		lv := []string{strconv.Itoa(g.Index), g.UUID}
		gauge(gpuUtil, float64(g.UtilPct)/100, lv...)
		gauge(gpuMemUsed, float64(g.VRAMUsedMB<<20), lv...)
		gauge(gpuMemTotal, float64(g.VRAMTotalMB<<20), lv...)
		gauge(gpuHealth, healthValues[g.Health.Status], lv...)
		if g.VRAMReservedMB != nil {
			gauge(gpuMemResv, float64(*g.VRAMReservedMB<<20), lv...)
		}
		if g.VRAMFreeMB != nil {
			gauge(gpuMemFree, float64(*g.VRAMFreeMB<<20), lv...)
		}
		if g.UnattributedPct != nil {
			gauge(gpuUnattrib, float64(*g.UnattributedPct)/100, lv...)
		}
		for _, r := range gpmRatios {
			if v := r.of(g); v != nil {
				gauge(r.desc, float64(*v)/100, lv...)
			}
		}
		if g.TempC != nil {
			gauge(gpuTemp, float64(*g.TempC), lv...)
		}
		if g.PowerW != nil {
			gauge(gpuPower, float64(*g.PowerW), lv...)
			gauge(gpuPowerCap, float64(*g.PowerLimitW), lv...)
		}
		if g.ECCUncorrected != nil {
			gauge(gpuECC, float64(*g.ECCUncorrected), lv...)
		}
		for _, r := range g.Throttle {
			gauge(gpuThrottle, 1, append(lv, r)...)
		}
	}
}
