package collector

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rbee/hive/bus/wire"
)

// ReadinessConfig configures the probes of workers' health endpoints.
type ReadinessConfig struct {
	// Path is what is asked of every worker with a port, at
	// http://127.0.0.1:<port><Path>; "" turns probing off (every worker
	// is then "running"). llama.cpp's server, vLLM and TGI answer
	// /health.
	Path string
	// Timeout bounds each probe; UnresponsiveAfter is how long a worker
	// that answered before may fail before it is "unresponsive".
	Timeout           time.Duration
	UnresponsiveAfter time.Duration
}

// maxProbes bounds the probes in flight at once, maxIdleProbes the
// connections kept open between them (the rest are closed after their
// probe): a host with 1,500 workers no longer holds 1,500 idle sockets.
const (
	maxProbes     = 32
	maxIdleProbes = 32
	// maxIdleEngines: engines are read every second, so a connection
	// kept for each of up to 64 saves a dial and its goroutines per read.
	maxIdleEngines = 64
)

// ProbeSockets is the most sockets the probes and engine reads hold at
// once, for the file-descriptor budget (cmd/hive's connBudget): the two
// run one after the other on one goroutine, and each keeps its own idle
// connections.
const ProbeSockets = maxProbes + maxIdleProbes + maxIdleEngines

// prober asks every worker with a port for its health, once per tick, on
// its own goroutine and concurrently, each probe under a short deadline:
// the tick only reads the latest answers (state), never waits for one.
type prober struct {
	cfg     ReadinessConfig
	client  *http.Client
	log     *slog.Logger
	now     func() time.Time
	changes *prometheus.CounterVec // state changes, by the new state
	results *prometheus.CounterVec // probes, by result
	kick    chan struct{}

	// listening is the round's set of listening ports (listeningPorts):
	// a worker whose port is not in it refuses the probe, which is then
	// answered without a connection. A worker loading its model for
	// minutes has no listener yet; a thousand of them cost a thousand
	// dials a second. Used by the round's goroutine only.
	listening  portSet
	diagBuf    []byte
	diagFailed bool // logged once; every target is then dialled

	// engine configures the reading of engines' load; engineClient,
	// engineErrors and enginePagesCut serve it; push publishes a
	// hive.load event (set by Run before the prober runs).
	engine         EngineConfig
	engineClient   *http.Client
	engineErrors   *prometheus.CounterVec
	enginePagesCut prometheus.Counter
	push           func([]wire.WorkerLoadOf)

	mu      sync.Mutex
	targets map[int32]int // pid -> port, from the last tick
	probes  map[int32]*probeState
	engines map[int32]*engineTarget
	shown   map[int32]string // the state the last event reported, workers with a port
}

// probeState is what the probes learnt of one worker process.
type probeState struct {
	port         int
	everOK       bool
	lastOK       bool
	failingSince time.Time
	next         time.Time // not asked again before, while it answers
}

// steadyProbe is how often a worker that answers is asked again; one not
// yet ready, or failing, is asked after every tick. A ready worker that
// stops answering is seen within this, well inside UnresponsiveAfter,
// and an idle host with a few servers is not woken for each every second.
const steadyProbe = 5 * time.Second

// due reports whether the worker is to be asked in the round after now: a
// new one, one that failed or never answered, or a ready one whose
// steadyProbe has passed.
func (ps *probeState) due(now time.Time) bool {
	return ps == nil || !ps.lastOK || !now.Before(ps.next)
}

// Results of a probe, the label of hive_worker_probes_total.
const (
	probeOK           = "ok"
	probeFailed       = "failed"        // dialled: refused, timed out or not 2xx
	probeNotListening = "not_listening" // nothing listens on the port: not dialled
)

func newProber(cfg ReadinessConfig, log *slog.Logger, changes, results *prometheus.CounterVec) *prober {
	return &prober{cfg: cfg, log: log, now: time.Now, changes: changes, results: results, kick: make(chan struct{}, 1),
		targets: map[int32]int{}, probes: map[int32]*probeState{}, engines: map[int32]*engineTarget{}, shown: map[int32]string{},
		engine: DefaultEngineConfig(), engineClient: loopbackClient(maxIdleEngines),
		engineErrors:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "e"}, []string{"reason"}),
		enginePagesCut: prometheus.NewCounter(prometheus.CounterOpts{Name: "cut"}),
		client:         loopbackClient(maxIdleProbes)}
}

// loopbackClient asks workers on the hive's loopback, each request under
// its context's deadline. A worker's answer that redirects is not
// followed (a health that redirects is not healthy; an engine's page
// that does is no page); no proxy sits between the hive and its own
// loopback.
func loopbackClient(idle int) *http.Client {
	return &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{Proxy: nil, MaxIdleConns: idle, MaxIdleConnsPerHost: 1,
			MaxConnsPerHost: 1, IdleConnTimeout: 30 * time.Second, DisableCompression: true},
	}
}

// portOf is a worker's port from its instance, 0 when it has none.
func portOf(instance string) int {
	p, err := strconv.Atoi(instance)
	if err != nil || p < 1 || p > 65535 {
		return 0
	}
	return p
}

// observe sets each worker's state from the probes so far, logs and
// counts each change, and makes the workers with a port the next round's
// targets (cs[i] is ws[i]'s: its port). A worker without a port is
// "running" and never asked: its instance is its pid, which is no port.
// It is the tick's only contact with the prober.
func (p *prober) observe(ws []wire.ProcessStats, cs []workerCounter) {
	now := p.now()
	p.mu.Lock()
	clear(p.targets)
	ported := make(map[int32]bool, len(ws))
	for i := range ws {
		w := &ws[i]
		port, pid := cs[i].port, int32(w.PID)
		if port == 0 {
			w.State = wire.WorkerRunning
			continue
		}
		ported[pid] = true
		w.State = p.healthState(pid, port, now)
		if p.engine.Interval > 0 {
			if t := p.engines[pid]; t == nil || t.port != port {
				p.engines[pid] = &engineTarget{port: port}
			}
			var stalled bool
			w.Load, stalled = p.engineLoad(pid, now)
			cs[i].load = w.Load
			if stalled && (w.State == wire.WorkerReady || w.State == wire.WorkerRunning) {
				w.State = wire.WorkerStalled
			}
		}
		if shown := p.shown[pid]; shown != w.State {
			if shown != "" || w.State != wire.WorkerStarting {
				p.log.Info("worker state", "pid", w.PID, "instance", w.Instance, "from", shown, "to", w.State)
			}
			p.changes.WithLabelValues(w.State).Inc()
			p.shown[pid] = w.State
		}
	}
	due := p.forget(ported, now)
	p.mu.Unlock()
	if due > 0 {
		select {
		case p.kick <- struct{}{}:
		default: // a round is still running: the next tick asks again
		}
	}
}

// forget drops what the prober keeps of workers that no longer have a
// port, and returns how many targets are due a probe. The caller holds
// p.mu.
func (p *prober) forget(ported map[int32]bool, now time.Time) (due int) {
	for pid := range p.probes {
		if _, ok := p.targets[pid]; !ok {
			delete(p.probes, pid)
		}
	}
	for pid := range p.engines {
		if !ported[pid] {
			delete(p.engines, pid)
		}
	}
	for pid := range p.shown {
		if !ported[pid] {
			delete(p.shown, pid)
		}
	}
	for pid := range p.targets {
		if p.probes[pid].due(now) {
			due++
		}
	}
	return due
}

// healthState is a worker's state from its probes: running when probing
// is off, else starting, ready or unresponsive; it makes the worker a
// target of the next round. The caller holds p.mu.
func (p *prober) healthState(pid int32, port int, now time.Time) string {
	if p.cfg.Path == "" {
		return wire.WorkerRunning
	}
	p.targets[pid] = port
	ps := p.probes[pid]
	if ps == nil || ps.port != port {
		ps = &probeState{port: port}
		p.probes[pid] = ps
	}
	switch {
	case !ps.everOK:
		return wire.WorkerStarting
	case ps.lastOK || now.Sub(ps.failingSince) < p.cfg.UnresponsiveAfter:
		return wire.WorkerReady
	}
	return wire.WorkerUnresponsive
}

// run probes the targets after each tick, and reads their engines every
// engine interval, until ctx ends.
func (p *prober) run(ctx context.Context) {
	var engines <-chan time.Time
	if p.engine.Interval > 0 {
		t := time.NewTicker(p.engine.Interval)
		defer t.Stop()
		engines = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
			p.round(ctx)
		case <-engines:
			p.readEngines(ctx)
		}
	}
}

func (p *prober) round(ctx context.Context) {
	now := p.now()
	p.mu.Lock()
	targets := make(map[int32]int, len(p.targets))
	for pid, port := range p.targets {
		if p.probes[pid].due(now) {
			targets[pid] = port
		}
	}
	p.mu.Unlock()
	if len(targets) == 0 {
		return
	}
	known := p.readListeners()
	sem := make(chan struct{}, maxProbes)
	var wg sync.WaitGroup
	for pid, port := range targets {
		if known && !p.listening.has(port) {
			p.results.WithLabelValues(probeNotListening).Inc()
			p.record(pid, port, false)
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ok := p.probe(ctx, port)
			result := probeFailed
			if ok {
				result = probeOK
			}
			p.results.WithLabelValues(result).Inc()
			p.record(pid, port, ok)
		})
	}
	wg.Wait()
}

// readListeners fills p.listening; false when the kernel could not say
// (no sock_diag: not Linux, or a sandbox that forbids netlink), and every
// target is then dialled, as before.
func (p *prober) readListeners() bool {
	if p.diagFailed {
		return false
	}
	if p.diagBuf == nil {
		p.diagBuf = make([]byte, 32<<10)
	}
	if err := listeningPorts(&p.listening, p.diagBuf); err != nil {
		p.diagFailed = true
		p.log.Info("listening sockets unreadable: every worker's health is asked by a connection", "err", err)
		return false
	}
	return true
}

// probe reports whether the worker's health endpoint answered 2xx in time.
func (p *prober) probe(ctx context.Context, port int) bool {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+p.cfg.Path, nil)
	if err != nil {
		return false
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // reuse the connection
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

func (p *prober) record(pid int32, port int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps := p.probes[pid]
	if ps == nil || ps.port != port {
		return // gone, or another process, since the round began
	}
	now := p.now()
	if !ok && (ps.lastOK || ps.failingSince.IsZero()) {
		ps.failingSince = now
	}
	if ok {
		ps.next = now.Add(steadyProbe)
	}
	ps.lastOK = ok
	ps.everOK = ps.everOK || ok
}
