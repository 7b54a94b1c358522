// Package jobs runs the operations the Queen and the keeper send a hive:
// spawn, list, inspect and stop workers, list and delete models, and a
// self-check. Each job runs from creation with its own context; its
// narration is published on hive.jobs.<id>.events and kept (bounded) so a
// stream opened at any time sees it from the start.
package jobs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/workerproc"
	"golang.org/x/sys/unix"
)

// Jobs is the module.
type Jobs struct {
	cfg   Config
	bus   *bus.Bus
	log   *slog.Logger
	match atomic.Pointer[workerproc.Matcher] // nil: only spawned workers; SetWorkerMatch replaces it
	procs *procManager
	http  *http.Client

	nc            *bus.Conn
	mu            sync.Mutex
	jobs          map[string]*job
	finished      []*job // finished jobs still kept, oldest first
	keptBytes     int64  // narration bytes of the jobs in finished
	running       int
	finishedTotal *prometheus.CounterVec // finished jobs by operation and result
	reserved      int                    // worker slots held by spawns in progress
	droppedEvents uint64
	evicted       uint64 // finished jobs forgotten early for the bounds
	logsRotated   atomic.Uint64
	stopping      atomic.Bool
	wg            sync.WaitGroup

	ready chan struct{}
}

// New validates cfg and registers the module's metrics with reg (nil: not
// exported). It starts nothing.
func New(cfg Config, b *bus.Bus, log *slog.Logger, reg prometheus.Registerer) (*Jobs, error) {
	if b == nil {
		return nil, errors.New("jobs: nil bus")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Zero means "the default" for the bounds and waits.
	def := DefaultConfig()
	cfg.MaxJobs = cmp.Or(cfg.MaxJobs, def.MaxJobs)
	cfg.MaxWorkers = cmp.Or(cfg.MaxWorkers, def.MaxWorkers)
	cfg.MaxRetained = cmp.Or(cfg.MaxRetained, def.MaxRetained)
	cfg.MaxEvents = cmp.Or(cfg.MaxEvents, def.MaxEvents)
	cfg.MaxJobBytes = cmp.Or(cfg.MaxJobBytes, def.MaxJobBytes)
	cfg.MaxRetainedBytes = cmp.Or(cfg.MaxRetainedBytes, def.MaxRetainedBytes)
	cfg.Retention = cmp.Or(cfg.Retention, def.Retention)
	cfg.ShutdownGrace = cmp.Or(cfg.ShutdownGrace, def.ShutdownGrace)
	cfg.HealthTimeout = cmp.Or(cfg.HealthTimeout, def.HealthTimeout)
	cfg.HealthPath = cmp.Or(cfg.HealthPath, def.HealthPath)
	cfg.StopGrace = cmp.Or(cfg.StopGrace, def.StopGrace)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Jobs{
		cfg: cfg,
		bus: b,
		log: log.With("module", "jobs"),
		http: &http.Client{
			Timeout: 2 * time.Second,
			// A worker's /health that redirects is not healthy; the hive
			// never goes where a redirect points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		jobs:  make(map[string]*job),
		ready: make(chan struct{}),
	}
	if err := m.SetWorkerMatch(cfg.WorkerMatch, cfg.WorkerMatchOn); err != nil {
		return nil, err
	}
	m.procs = newProcManager(m.log, cfg.statePath())
	m.procs.adoptable = m.adoptable
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := m.register(reg); err != nil {
		return nil, fmt.Errorf("jobs: metrics: %w", err)
	}
	return m, nil
}

// Ready is closed once Run answers requests.
func (m *Jobs) Ready() <-chan struct{} { return m.ready }

// Run answers job requests until ctx ends; then it cancels the
// running jobs, waits for them, and stops the workers it spawned if
// configured to.
func (m *Jobs) Run(ctx context.Context) error {
	nc, err := m.bus.Connect("jobs")
	if err != nil {
		return err
	}
	defer nc.Close()
	m.nc = nc
	// Workers spawned by an earlier run of the hive count and are
	// reported before the first job can spawn more.
	if err := m.procs.openState(); err != nil {
		return err
	}
	defer m.procs.closeState()
	m.takeBack()
	// Jobs are cancelled by Run alone, after it has marked the shutdown:
	// a spawn cancelled by the hive's stop must see the short shutdown
	// grace, not the normal one.
	jctx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	subs, err := m.serve(jctx, nc)
	defer func() {
		for _, s := range subs {
			_ = s.Unsubscribe()
		}
	}()
	if err != nil {
		return err
	}
	close(m.ready)

	reapDone := make(chan struct{})
	go func() {
		defer close(reapDone)
		m.procs.reapLoop(jctx, func(w *spawned) { m.announce(wire.SubjectWorkersStopped, w) })
	}()
	m.keepHouse(ctx)
	m.stopping.Store(true)
	cancelJobs()
	m.wg.Wait()
	<-reapDone
	m.leaveWorkers()
	return nil
}

// takeBack adopts the workers an earlier run of the hive spawned and
// announces each.
func (m *Jobs) takeBack() {
	adopted, err := m.procs.adopt()
	if err != nil {
		m.log.Error("workers from before the restart not taken back", "err", err)
	}
	for _, w := range adopted {
		m.announce(wire.SubjectWorkersStarted, w)
	}
}

// serve subscribes what the module answers: create, cancel and replay a
// job, list the workers. It returns the subscriptions made, even on error.
func (m *Jobs) serve(jctx context.Context, nc *bus.Conn) ([]*bus.Sub, error) {
	var subs []*bus.Sub
	add := func(s *bus.Sub, err error) error {
		if err != nil {
			return fmt.Errorf("jobs: subscribe: %w", err)
		}
		subs = append(subs, s)
		return nil
	}
	// The gateway forwards the POST body as it came: create parses it.
	if err := add(bus.Handle(nc, wire.SubjectJobsCreate, func(body json.RawMessage) (wire.JobCreated, error) {
		return m.create(jctx, body)
	})); err != nil {
		return subs, err
	}
	if err := add(bus.Handle(nc, wire.SubjectJobsCancel, func(ref wire.JobRef) (wire.JobCancelled, error) {
		if !wire.ValidJobID(ref.JobID) {
			return wire.JobCancelled{}, fmt.Errorf("%w: bad job reference", errNotFound)
		}
		return m.cancelJob(ref.JobID)
	})); err != nil {
		return subs, err
	}
	if err := add(bus.Handle(nc, wire.SubjectJobsReplay, func(ref wire.JobRef) (wire.JobReplay, error) {
		if !wire.ValidJobID(ref.JobID) {
			return wire.JobReplay{}, fmt.Errorf("%w: bad job reference", errNotFound)
		}
		return m.replay(ref.JobID)
	})); err != nil {
		return subs, err
	}
	if err := add(bus.Handle(nc, wire.SubjectWorkersList, m.workerList)); err != nil {
		return subs, err
	}
	if err := nc.Flush(); err != nil {
		return subs, fmt.Errorf("jobs: flush: %w", err)
	}
	return subs, nil
}

func (m *Jobs) workerList(struct{}) (wire.WorkerList, error) {
	out := wire.WorkerList{Workers: []wire.WorkerEvent{}}
	for _, w := range m.procs.all() {
		out.Workers = append(out.Workers, workerEvent(w))
	}
	return out, nil
}

// keepHouse prunes finished jobs and rotates the workers' logs until ctx
// ends.
func (m *Jobs) keepHouse(ctx context.Context) {
	every := min(max(m.cfg.Retention/4, 10*time.Millisecond), 30*time.Second)
	prune := time.NewTicker(every)
	defer prune.Stop()
	logs := time.NewTicker(10 * time.Second)
	defer logs.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-prune.C:
			if n := m.prune(); n > 0 {
				m.log.Debug("pruned finished jobs", "n", n)
			}
		case <-logs.C:
			m.rotateLogs()
		}
	}
}

// leaveWorkers stops the spawned workers on the way out if configured
// to, else says they are left running.
func (m *Jobs) leaveWorkers() {
	if m.cfg.StopWorkersOnExit {
		for _, w := range m.procs.stopAll(m.grace()) {
			m.announce(wire.SubjectWorkersStopped, w)
		}
	} else if n := m.procs.count(); n > 0 {
		m.log.Info("leaving spawned workers running", "workers", n)
	}
}

// grace is the wait between SIGTERM and SIGKILL right now.
func (m *Jobs) grace() time.Duration {
	if m.stopping.Load() {
		return min(m.cfg.StopGrace, m.cfg.ShutdownGrace)
	}
	return m.cfg.StopGrace
}

// announce tells the collector about a worker.
func (m *Jobs) announce(subject string, w *spawned) {
	if err := m.nc.PublishJSON(subject, workerEvent(w)); err != nil {
		m.log.Warn("announce worker", "subject", subject, "err", err)
	}
}

func workerEvent(w *spawned) wire.WorkerEvent {
	return wire.WorkerEvent{PID: w.pid, Group: "llm", Instance: strconv.Itoa(w.port), Model: w.model, Exit: exitOf(w)}
}

// exitOf is how w ended: nil while it runs, and for a worker adopted from
// an earlier run of the hive, whose status went to its new parent.
func exitOf(w *spawned) *wire.WorkerExit {
	select {
	case <-w.exited:
	default:
		return nil
	}
	if w.adopted || w.statusErr != nil {
		return nil
	}
	if w.status.Signaled() {
		return &wire.WorkerExit{Signal: unix.SignalName(w.status.Signal())}
	}
	code := w.status.ExitStatus()
	return &wire.WorkerExit{Code: &code}
}

// dispatch runs one operation with its handler (operations).
func (m *Jobs) dispatch(ctx context.Context, n *narrator, op Operation) error {
	if o, ok := operations[op.Name]; ok && o.run != nil {
		return o.run(m, ctx, n, op)
	}
	return fmt.Errorf("operation %q has no handler", op.Name)
}

// SetWorkerMatch replaces the pattern of the workers that list, get and
// delete see besides the spawned ones, while the module runs (a reload);
// "" leaves only the spawned ones.
func (m *Jobs) SetWorkerMatch(pattern, on string) error {
	re, err := workerproc.NewMatcher(pattern, on)
	if err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	m.match.Store(re)
	return nil
}
