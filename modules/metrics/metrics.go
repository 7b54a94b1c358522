// Package metrics turns what the hive knows into Prometheus metrics: each
// worker's counters from the collector's ticks, and every module's own
// counters, asked over the bus at scrape time. It is a consumer of the bus
// like any other; the gateway serves its answer on GET /metrics.
package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"

	"github.com/rbee/hive/bus"
)

// Config configures the module.
type Config struct {
	HiveID string
	// Version and Commit label hive_build_info.
	Version string
	Commit  string
	// StatsTimeout bounds each module's answer during a scrape; a module
	// that does not answer in time is left out of that scrape.
	StatsTimeout time.Duration
}

// DefaultConfig waits half a second for each module's counters.
func DefaultConfig() Config { return Config{StatsTimeout: 500 * time.Millisecond} }

// Validate reports every setting the module cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.HiveID == "" {
		errs = append(errs, errors.New("metrics: empty hive id"))
	}
	if c.StatsTimeout <= 0 {
		errs = append(errs, fmt.Errorf("metrics: stats timeout %v must be positive", c.StatsTimeout))
	}
	return errors.Join(errs...)
}

// Metrics is the module.
type Metrics struct {
	cfg   Config
	bus   *bus.Bus
	log   *slog.Logger
	reg   *prometheus.Registry
	ready chan struct{}

	nc     *bus.Conn
	mu     sync.Mutex
	latest bus.WorkerCounters
}

// New builds the registry. It starts nothing.
func New(cfg Config, b *bus.Bus, log *slog.Logger) (*Metrics, error) {
	if b == nil {
		return nil, errors.New("metrics: nil bus")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.StatsTimeout == 0 {
		cfg.StatsTimeout = DefaultConfig().StatsTimeout
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Metrics{cfg: cfg, bus: b, log: log.With("module", "metrics"), reg: prometheus.NewRegistry(), ready: make(chan struct{})}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "hive_build_info",
		Help:        "The hive's version and commit; always 1.",
		ConstLabels: prometheus.Labels{"version": cfg.Version, "commit": cfg.Commit, "hive_id": cfg.HiveID},
	})
	build.Set(1)
	for _, c := range []prometheus.Collector{
		build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m,
	} {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// Ready is closed once Run answers scrapes.
func (m *Metrics) Ready() <-chan struct{} { return m.ready }

// Run follows the collector's counters and answers scrapes until ctx ends.
func (m *Metrics) Run(ctx context.Context) error {
	nc, err := m.bus.Connect("metrics")
	if err != nil {
		return err
	}
	defer nc.Close()
	m.nc = nc
	wsub, err := bus.Subscribe(nc, bus.SubjectWorkerCounters, func(wc bus.WorkerCounters) {
		if wc.HiveID != m.cfg.HiveID {
			return
		}
		m.mu.Lock()
		m.latest = wc
		m.mu.Unlock()
	})
	if err != nil {
		return fmt.Errorf("metrics: subscribe: %w", err)
	}
	defer func() { _ = wsub.Unsubscribe() }()
	ssub, err := bus.Handle(nc, bus.SubjectMetricsScrape, func(struct{}) (bus.MetricsScrape, error) { return m.scrape(ctx) })
	if err != nil {
		return fmt.Errorf("metrics: subscribe: %w", err)
	}
	defer func() { _ = ssub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("metrics: flush: %w", err)
	}
	close(m.ready)
	<-ctx.Done()
	return nil
}

// scrape renders the registry in the text exposition format.
func (m *Metrics) scrape(context.Context) (bus.MetricsScrape, error) {
	families, err := m.reg.Gather()
	if err != nil {
		// Gather returns what it could alongside the error: serve it.
		m.log.Warn("gather", "err", err)
	}
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, format)
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return bus.MetricsScrape{}, fmt.Errorf("metrics: encode: %w", err)
		}
	}
	return bus.MetricsScrape{ContentType: string(format), Body: b.String()}, nil
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
