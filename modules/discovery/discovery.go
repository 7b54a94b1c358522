// Package discovery performs the handshake with the Queen: exponential
// backoff, then either the legacy 1 s push of HiveHeartbeat (fed from
// hive.telemetry, never from a second collection) with Queen-restart
// detection, or the one-time ready callback of newer Queens.
package discovery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/wait"
)

// Discovery is the module.
type Discovery struct {
	cfg    Config
	bus    *bus.Bus
	log    *slog.Logger
	client *http.Client
	nc     *bus.Conn

	allow atomic.Pointer[allowList] // where Queen changes may point; SetQueenAllow replaces it

	mu      sync.Mutex
	last    *event  // latest telemetry, for discovery bodies
	current string  // the Queen of the running loop, "" if none
	tokens  float64 // Queen-change rate limit
	tokenAt time.Time
	latest  chan event
	urls    chan string

	replaced  atomic.Uint64 // telemetry events superseded before being pushed
	droppedQ  atomic.Uint64 // queen URLs dropped because the queue was full
	refused   atomic.Uint64 // Queen changes refused (not allowed, not authorized, rate)
	pushFails atomic.Uint64 // pushes to the Queen that failed
	// queenState is where this hive stands with its Queen, for the
	// dashboard and alerts (hive_queen_state).
	queenState atomic.Int32
	loops      atomic.Uint64 // loops started, for tests and logs
	ready      chan struct{}
}

// Ready is closed once Run listens for telemetry and Queen URLs.
func (d *Discovery) Ready() <-chan struct{} { return d.ready }

// New validates cfg and registers the module's metrics with reg (nil: not
// exported). It starts nothing.
func New(cfg Config, b *bus.Bus, log *slog.Logger, reg prometheus.Registerer) (*Discovery, error) {
	if b == nil {
		return nil, errors.New("discovery: nil bus")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Zero means "the default" for these; for Jitter and Retry zero is a
	// setting (none, give up).
	def := DefaultConfig()
	cfg.API = cmp.Or(cfg.API, def.API)
	if len(cfg.Delays) == 0 {
		cfg.Delays = def.Delays
	}
	cfg.RequestTimeout = cmp.Or(cfg.RequestTimeout, def.RequestTimeout)
	cfg.ChangeBurst = cmp.Or(cfg.ChangeBurst, def.ChangeBurst)
	cfg.ChangeEvery = cmp.Or(cfg.ChangeEvery, def.ChangeEvery)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = wait.Sleep
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	allow, _ := cfg.allowList() // checked by Validate
	transport, err := cfg.transport(log)
	if err != nil {
		return nil, err
	}
	d := &Discovery{
		cfg:    cfg,
		bus:    b,
		log:    log.With("module", "discovery"),
		tokens: float64(cfg.ChangeBurst),
		client: &http.Client{
			Timeout: cfg.RequestTimeout,
			// Never follow a redirect: a "Queen" answering 307 to
			// /v1/shutdown or to an internal URL must get nothing more.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     transport,
		},
		latest: make(chan event, 1),
		urls:   make(chan string, 8),
		ready:  make(chan struct{}),
	}
	d.allow.Store(&allow)
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := d.register(reg); err != nil {
		return nil, fmt.Errorf("discovery: metrics: %w", err)
	}
	return d, nil
}

// SetQueenAllow replaces where Queen changes may point (the --queen-allow
// list; "" is the configured Queen's host) while discovery runs (a
// reload). It judges changes from then on: the Queen being followed, if
// any, is kept.
func (d *Discovery) SetQueenAllow(spec string) error {
	cfg := d.cfg
	cfg.QueenAllow = spec
	a, err := cfg.allowList()
	if err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	d.allow.Store(&a)
	return nil
}

// loop is one discovery loop toward one Queen.
type loop struct {
	url    string
	cancel context.CancelFunc
	done   chan struct{}
}

func (l *loop) running() bool {
	if l == nil {
		return false
	}
	select {
	case <-l.done:
		return false
	default:
		return true
	}
}

// Run follows telemetry and Queen URLs until ctx ends. At most one
// loop runs: a new Queen URL replaces it, the same URL while it runs is
// ignored.
func (d *Discovery) Run(ctx context.Context) error {
	nc, err := d.bus.Connect("discovery")
	if err != nil {
		return err
	}
	defer nc.Close()
	d.nc = nc
	s := &session{d: d, ctx: ctx, nc: nc}
	defer s.close()
	standalone := d.cfg.QueenURL == "" && d.allow.Load().empty()
	if !standalone {
		if err := s.readTelemetry(); err != nil {
			return err
		}
	}
	qsub, err := bus.Handle(nc, wire.SubjectDiscoveryQueen, d.onQueenChange)
	if err != nil {
		return fmt.Errorf("discovery: subscribe: %w", err)
	}
	defer func() { _ = qsub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		return fmt.Errorf("discovery: flush: %w", err)
	}
	close(d.ready)

	switch {
	case standalone:
		d.log.Info("standalone: no Queen is configured, so this hive reports to none (its stream, metrics and dashboard still serve); join one with --queen-url http://QUEEN:7833 or HIVE_QUEEN_URL")
	case d.cfg.QueenURL == "":
		d.log.Info("standalone: no Queen URL; waiting for one from /capabilities?queen_url=", "allowed", d.allow.Load().String())
	default:
		s.start(d.cfg.QueenURL)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case u := <-d.urls:
			s.switchTo(u)
		}
	}
}

func (d *Discovery) onTelemetry(data []byte) {
	var ev event
	if err := json.Unmarshal(data, &ev); err != nil || ev.HiveInfo == nil || ev.Workers == nil {
		d.log.Warn("undecodable telemetry", "err", err)
		return
	}
	d.mu.Lock()
	d.last = &ev
	d.mu.Unlock()
	// Keep only the newest event for the push: a slow Queen gets the
	// current state, not a backlog.
	select {
	case d.latest <- ev:
	default:
		select {
		case <-d.latest:
			d.replaced.Add(1)
		default:
		}
		select {
		case d.latest <- ev:
		default:
		}
	}
}

// onQueenChange answers a Queen URL learnt from /capabilities?queen_url=.
// The URL of the running loop is always fine (the Queen repeats it); the
// configured one may restart an ended loop; any other needs an authorized
// caller. Every start needs an allowed host and a free slot of the rate
// limit.
func (d *Discovery) onQueenChange(q wire.QueenURL) (wire.QueenAccepted, error) {
	refuse := func(code, msg string, retry int) (wire.QueenAccepted, error) {
		d.refused.Add(1)
		return wire.QueenAccepted{}, &bus.ReplyError{Code: code, Msg: msg, RetryAfter: retry}
	}
	if err := wire.ValidateQueenURL(q.URL); err != nil {
		return refuse(wire.CodeInvalid, err.Error(), 0)
	}
	d.mu.Lock()
	same := d.current == q.URL
	d.mu.Unlock()
	if same {
		return wire.QueenAccepted{URL: q.URL, Status: "unchanged"}, nil
	}
	// Restarting discovery toward the configured Queen changes nothing an
	// operator has not chosen; any other Queen does.
	if !q.Authorized && q.URL != d.cfg.QueenURL {
		return refuse(wire.CodeForbidden, "changing the Queen needs an authorized caller", 0)
	}
	if allow := d.allow.Load(); !allow.allows(q.URL) {
		d.log.Warn("queen URL refused: host not allowed", "url", q.URL, "allowed", allow.String())
		return refuse(wire.CodeForbidden, fmt.Sprintf("queen_url host %q is not allowed (--queen-allow %q)", hostOf(q.URL), allow.String()), 0)
	}
	if wait := d.take(); wait > 0 {
		return refuse(wire.CodeRateLimited, "too many Queen changes; retry later", int(wait.Seconds()+0.999))
	}
	select {
	case d.urls <- q.URL:
		return wire.QueenAccepted{URL: q.URL, Status: "started"}, nil
	default:
		d.droppedQ.Add(1)
		return refuse(wire.CodeBusy, "too many Queen changes pending", 1)
	}
}

// take spends one Queen change, returning 0, or how long until one is
// free.
func (d *Discovery) take() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Now()
	if !d.tokenAt.IsZero() {
		d.tokens = min(float64(d.cfg.ChangeBurst), d.tokens+float64(now.Sub(d.tokenAt))/float64(d.cfg.ChangeEvery))
	}
	d.tokenAt = now
	if d.tokens < 1 {
		return time.Duration((1 - d.tokens) * float64(d.cfg.ChangeEvery))
	}
	d.tokens--
	return 0
}

// snapshot returns the hive_info and workers to send in a discovery body.
func (d *Discovery) snapshot() event {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last != nil {
		return *d.last
	}
	return startingEvent(d.cfg.Hive)
}
