// Package collector samples the hive's worker processes once per tick and
// publishes one telemetry event on hive.telemetry.
package collector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/kmsg"
)

// Collector is the sampling module.
type Collector struct {
	cfg       Config
	bus       *bus.Bus
	log       *slog.Logger
	announced *AnnouncedSource
	sources   []Source
	match     *MatchSource // the --worker-match source, nil without one
	sampler   *sampler
	metrics   *metrics
	node      *nodeSampler
	health    *healthTracker
	// lastHealth is the hive's health last published, to log changes.
	lastHealth wire.HealthStatus
	lastGPU    map[string]string // each GPU's status last published
	// table is the tick's one walk of /proc, shared by the pattern source,
	// the descendant folding and the sampler.
	table    *procTable
	withArgs bool

	gpuErr string // last GPU error logged, to log changes only
	// lastGPUs are the node's GPUs of the last good reading, at lastGPUAt:
	// shown, marked stale, while a driver call hangs.
	lastGPUs  []wire.NodeGPU
	lastGPUAt time.Time
	trimming  bool // the last event was over its size bound

	prober *prober
	// last is the last event's workers by pid, for the one "exited" event
	// of a worker whose exit was announced; exits are those announcements,
	// taken by the next tick.
	last    map[uint32]wire.ProcessStats
	exitsMu sync.Mutex
	exits   []wire.WorkerEvent
	utilSrc string // last source of gpu_util_pct logged

	// The kernel log's Xids (kmsgxid.go): what was read and dropped, the
	// GPUs by bus id, the Xids seen lately, which worker each process
	// belongs to, the workers failed by an application Xid, and the
	// sticky Xids kept across restarts (sticky.go).
	kmsgStats   kmsg.Stats
	kmsgDropped atomic.Uint64
	buses       map[string]gpuRef
	seenXID     map[string]time.Time
	sampled     []Worker // the last tick's workers, for an Xid's pid
	failed      map[uint32]uint64
	sticky      *stickyStore
}

// New validates cfg, builds the sources and registers the collector's
// metrics with reg (nil: not exported). It starts nothing.
func New(cfg Config, b *bus.Bus, log *slog.Logger, reg prometheus.Registerer) (*Collector, error) {
	if b == nil {
		return nil, errors.New("collector: nil bus")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.GPU == nil {
		cfg.GPU = NoGPU{}
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	met, err := newMetrics(reg, cfg.GPU.Name())
	if err != nil {
		return nil, fmt.Errorf("collector: metrics: %w", err)
	}
	c := &Collector{
		metrics:    met,
		health:     newHealthTracker(),
		lastHealth: wire.Healthy,
		cfg:        cfg,
		bus:        b,
		log:        log.With("module", "collector"),
		announced:  NewAnnouncedSource(),
		sampler:    newSampler(),
		table:      newProcTable(),
		buses:      map[string]gpuRef{},
		seenXID:    map[string]time.Time{},
		failed:     map[uint32]uint64{},
	}
	if err := c.registerKmsg(reg); err != nil {
		return nil, fmt.Errorf("collector: metrics: %w", err)
	}
	c.sampler.table = c.table
	c.node = newNodeSampler(c.table.root)
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		c.table.keepOpen(HeldFiles(rl.Cur))
	}
	c.prober = newProber(cfg.Readiness, c.log, met.stateChanges, met.probes)
	c.prober.engine, c.prober.engineErrors, c.prober.enginePagesCut = cfg.Engine, met.engineErrors, met.pagesCut
	if err := c.buildSources(); err != nil {
		return nil, err
	}
	return c, nil
}

// buildSources lists the worker sources, in their precedence on a shared
// pid: what a module announced, then the cgroup layout, then the
// command-line pattern.
func (c *Collector) buildSources() error {
	cfg := c.cfg
	c.sources = append(c.sources, c.announced)
	if cfg.CgroupRoot != "" {
		c.sources = append(c.sources, &CgroupSource{Root: cfg.CgroupRoot})
	}
	if cfg.WorkerMatch != "" {
		m, err := NewMatchSource(cfg.WorkerMatch, cfg.WorkerMatchOn)
		if err != nil {
			return err
		}
		m.table, m.shared = c.table, true
		c.withArgs = true
		c.match = m
		c.sources = append(c.sources, m)
	}
	return nil
}

// Run samples and publishes every Interval until ctx ends, then publishes
// a last event with operational_status "stopping".
// The first event is published at once.
func (c *Collector) Run(ctx context.Context) error {
	nc, err := c.bus.Connect("collector")
	if err != nil {
		return err
	}
	defer nc.Close()
	defer c.table.close()
	defer c.node.close()

	subs, err := c.followAnnouncements(ctx, nc)
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	if err != nil {
		return err
	}
	c.prober.push = func(ws []wire.WorkerLoadOf) { c.publishLoad(nc, ws) }
	probing := make(chan struct{})
	go func() {
		defer close(probing)
		c.prober.run(ctx)
	}()
	defer func() { <-probing }()
	xids, reading := c.startKmsg(ctx)
	defer func() { <-reading }()
	c.log.Info("collector started", "interval", c.cfg.Interval.String(), "gpu", c.cfg.GPU.Name(), "sources", len(c.sources))
	c.loop(ctx, nc, xids)
	return nil
}

func (c *Collector) publishStopping(nc *bus.Conn, last tickSample) {
	c.publish(nc, wire.StatusStopping, last, time.Now())
	_ = nc.FlushTimeout(time.Second)
}

// tickSample is what one tick publishes.
type tickSample struct {
	workers []wire.ProcessStats
	node    wire.Node
	health  wire.HealthStatus
}

// tick collects one sample of every worker and of the machine, judges the
// health, publishes it and keeps the same tick's counters for /metrics.
// The event's timestamp is the tick's instant (the ticker's), not the end
// of sampling: consumers see the cadence, whatever one tick cost.
func (c *Collector) tick(ctx context.Context, nc *bus.Conn, status string, at time.Time) tickSample {
	start := time.Now()
	workers, counters, gpu := c.collect(ctx)
	c.prober.observe(workers, counters)
	c.markFailed(workers)
	workers = c.withExits(workers)
	c.noteXIDs(at, gpu)
	node, err := c.node.sample()
	if err != nil {
		c.metrics.sampleErrors.Inc()
	}
	health, perGPU := c.health.observe(at, gpu.snap, gpu.err, gpu.procErr)
	health = withChecks(health, c.cfg.Checks)
	node.GPUs = c.gpusOf(at, gpu, perGPU)
	c.noteHealth(health, node.GPUs)
	s := tickSample{workers: workers, node: node, health: health}
	c.publish(nc, status, s, at)
	c.metrics.setWorkers(counters, workers)
	c.metrics.setGPUs(node.GPUs, health)
	c.metrics.tick.Observe(time.Since(start).Seconds())
	return s
}

// gpuTick is the GPU part of one collection, and how the /proc part went,
// for the health rules.
type gpuTick struct {
	snap    GPUSnapshot
	err     error // the GPU source's, nil or ErrNoGPU when there is none
	procErr error // the process walk's or a worker source's
}

// collect runs one collection (sources, process samples, one GPU query)
// and returns each worker's sample and cumulative counters.
func (c *Collector) collect(ctx context.Context) ([]wire.ProcessStats, []workerCounter, gpuTick) {
	gpuCtx, cancel := context.WithTimeout(ctx, c.cfg.Interval*8/10)
	defer cancel()
	gpuDone := c.sampleGPU(gpuCtx)
	var procErr error

	// The walk of /proc serves the pattern, the descendants and the
	// sampler. Without a pattern it waits for a worker: a hive with none
	// (--worker-match "" on a host between jobs) reads no /proc at all.
	if c.withArgs {
		procErr = c.refreshTable(ctx)
	}
	list, claimed, err := c.scanSources(ctx)
	procErr = cmp.Or(procErr, err)
	if len(list) > 0 && !c.withArgs {
		procErr = cmp.Or(procErr, c.refreshTable(ctx))
	}
	c.foldDescendants(list, claimed)
	out := make([]wire.ProcessStats, 0, len(list))
	counters := make([]workerCounter, 0, len(list))
	kept := make([]Worker, 0, len(list))
	for _, w := range list {
		if st, wc, ok := c.sampler.sampleWithTotals(ctx, w); ok {
			out = append(out, st)
			counters = append(counters, wc)
			kept = append(kept, w)
		}
	}
	c.sampler.endTick()
	c.sampled = kept

	gpu := <-gpuDone
	gpu.procErr = procErr
	ix := newGPUIndex(gpu.snap)
	for i := range out {
		ix.apply(kept[i], &out[i])
		counters[i].port = kept[i].Port
		counters[i].gpuUtilRatio = float64(out[i].GPUUtilPct) / 100
		counters[i].gpuUtilSource = out[i].GPUUtilSource
		counters[i].gpuMemoryBytes = out[i].VRAMMB << 20
	}
	return out, counters, gpu
}

// sampleGPU queries the GPUs in their own goroutine, beside the /proc
// work, under ctx's deadline; the snapshot arrives on the channel.
func (c *Collector) sampleGPU(ctx context.Context) <-chan gpuTick {
	done := make(chan gpuTick, 1)
	if _, none := c.cfg.GPU.(NoGPU); none {
		done <- gpuTick{} // no goroutine to wake on a host without GPUs
		return done
	}
	go func() {
		snap, err := c.cfg.GPU.Sample(ctx)
		c.noteGPUErr(err)
		if err == nil {
			c.noteUtilSource(snap)

		}
		if errors.Is(err, ErrNoGPU) {
			err = nil // a host without GPUs is not a failure
		}
		done <- gpuTick{snap: snap, err: err}
	}()
	return done
}

func (c *Collector) refreshTable(ctx context.Context) error {
	cut := c.table.cut
	err := c.table.refresh(ctx, c.withArgs)
	c.metrics.cmdlinesCut.Add(float64(c.table.cut - cut))
	if err != nil {
		c.metrics.sampleErrors.Inc()
		c.log.Warn("process table", "err", err)
	}
	return err
}

// scanSources lists the workers of every source. A pid claimed by an
// earlier source is skipped by later ones; claimed holds them all. err is
// the first source's failure: the list may lack workers.
func (c *Collector) scanSources(ctx context.Context) (list []Worker, claimed map[int32]bool, err error) {
	claimed = make(map[int32]bool)
	for _, s := range c.sources {
		ws, serr := s.Scan(ctx)
		if serr != nil {
			c.metrics.sampleErrors.Inc()
			c.log.Warn("worker source failed", "source", s.Name(), "err", serr)
			err = cmp.Or(err, fmt.Errorf("%s source: %w", s.Name(), serr))
			continue
		}
		for _, w := range ws {
			if len(w.PIDs) == 0 || claimed[w.PIDs[0]] {
				continue
			}
			pids := w.PIDs[:0:0]
			for _, pid := range w.PIDs {
				if !claimed[pid] {
					claimed[pid] = true
					pids = append(pids, pid)
				}
			}
			w.PIDs = pids
			list = append(list, w)
		}
	}
	return list, claimed, err
}

// foldDescendants adds to each worker every descendant of its processes,
// matching or not (a server's tokenizer or helper processes), unless
// another worker claimed it: listed processes are claimed first.
func (c *Collector) foldDescendants(list []Worker, claimed map[int32]bool) {
	claim := func(pid int32) bool {
		if claimed[pid] {
			return false
		}
		claimed[pid] = true
		return true
	}
	for i := range list {
		for _, pid := range slices.Clone(list[i].PIDs) {
			list[i].PIDs = c.table.descendants(pid, list[i].PIDs, claim)
		}
	}
}

func (c *Collector) publish(nc *bus.Conn, status string, s tickSample, at time.Time) {
	info := c.cfg.Hive
	info.OperationalStatus = status
	info.HealthStatus = s.health
	if s.workers == nil {
		s.workers = []wire.ProcessStats{}
	}
	if s.node.GPUs == nil {
		s.node.GPUs = []wire.NodeGPU{}
	}
	ev := wire.TelemetryEvent{
		Type:      "telemetry",
		HiveID:    info.ID,
		HiveInfo:  info,
		Timestamp: wire.SSETimestamp(at),
		Workers:   s.workers,
		Node:      s.node,
	}
	data, omitted, err := wire.FitEvent(ev, wire.MaxEventBytes)
	if err != nil {
		c.log.Error("encode telemetry", "err", err)
		return
	}
	c.noteTrim(omitted, len(ev.Workers))
	if err := nc.PublishTelemetry(info.ID, data); err != nil {
		c.metrics.publishErrors.Inc()
		c.log.Warn("publish telemetry", "err", err, "bytes", len(data))
		return
	}
	c.metrics.published.Inc()
}
