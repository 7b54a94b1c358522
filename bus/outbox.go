package bus

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// The outbox keeps this hive's telemetry for the hub's history in a
// JetStream stream of the edge server, in an account of its own that no
// external client reaches, until the hub has acknowledged each event
// (forward.go). The live path (bridge, leafnode) never waits for it.
const (
	outboxAccount = "OUTBOX"
	outboxStream  = "HUB_OUTBOX"
	outboxSubject = "hive.outbox"
	outboxAcks    = "_OUTBOX.acks"
	// outboxDomain keeps the hive's JetStream apart from the hub's, were
	// a JetStream API ever to cross the leafnode.
	outboxDomain = "hive"
	// maxPendingStores bounds the stores sent and not yet acknowledged
	// by the local stream; past it an event is dropped (reason "store").
	maxPendingStores = 256
)

// HubHistoryStream is the hub's stream (deployments/hub-stream.json)
// that acknowledges what the outbox forwards.
const HubHistoryStream = "HIVE_TELEMETRY"

// StoreConfig bounds what the hive keeps for the hub while it cannot
// forward it.
type StoreConfig struct {
	// Dir holds the store (JetStream file storage); "" keeps nothing.
	Dir string
	// MaxAge and MaxBytes bound the store; past either the oldest events
	// go first, counted in hive_hub_dropped_total.
	MaxAge   time.Duration
	MaxBytes int64
	// Rate is the most events a second forwarded to the hub, the live
	// one included: what 10,000 hives coming back at once add to the hub.
	Rate int
}

// DefaultStoreConfig keeps an hour, the hub's own history (max_age 1h),
// in 256 MiB: an hour of events at the hub's largest (64 KiB, 225 MiB).
// Ten events a second drain a 10-minute outage in about 67 s.
var DefaultStoreConfig = StoreConfig{MaxAge: time.Hour, MaxBytes: 256 << 20, Rate: 10}

// Reasons of hive_hub_dropped_total.
const (
	dropAge        = "age"         // older than MaxAge before the hub took it
	dropBytes      = "bytes"       // pushed out by MaxBytes
	dropStore      = "store"       // the store refused it (disk full, store down)
	dropHubRefused = "hub_refused" // the hub's stream refused it for good
)

var dropReasons = []string{dropAge, dropBytes, dropStore, dropHubRefused}

// outbox is the store and its forwarder.
type outbox struct {
	cfg     StoreConfig
	setup   *outboxSetup // its lock, let go after the edge server stopped
	nc      *nats.Conn   // in-process, OUTBOX account
	stream  jetstream.Stream
	hub     *nats.Conn // to the hub's ingest users (forward.go)
	hubJS   jetstream.JetStream
	subject string // the hub's subject of this hive, hive.telemetry.<id>
	log     *slog.Logger
	wake    chan struct{}
	quit    chan struct{}
	done    sync.WaitGroup

	pending   atomic.Int64  // stores not acknowledged yet
	lastAck   atomic.Int64  // when the store last answered (unix ns)
	waitFrom  atomic.Int64  // when pending last rose from 0 (unix ns)
	stalled   atomic.Bool   // the store answers nothing (store.go)
	lastProbe time.Time     // the bridge's last store while stalled
	next      atomic.Uint64 // the next sequence to forward
	stored    atomic.Uint64 // the last sequence the store acknowledged
	forwarded atomic.Uint64
	// state is the store's last known content, for the metrics (a
	// scrape asks the store at most every stateTTL).
	stateMu   sync.Mutex
	state     storeState
	dropped   map[string]*atomic.Uint64
	storeErr  atomic.Pointer[string] // why the last store failed; nil after a success
	errLogged atomic.Bool
}

// outboxOptions turns on JetStream in opts, for the OUTBOX account only.
func outboxOptions(opts *server.Options, cfg StoreConfig) *server.Account {
	opts.JetStream = true
	opts.StoreDir = filepath.Join(cfg.Dir, "jetstream")
	opts.JetStreamDomain = outboxDomain
	// The stream's bound plus its indexes; nothing is kept in memory.
	opts.JetStreamMaxStore = cfg.MaxBytes + 16<<20
	opts.JetStreamMaxMemory = 1 << 20
	// JetStream runs on the system account's internal client; no user
	// is in it, so no external client reaches it.
	opts.NoSystemAccount = false
	acc := server.NewAccount(outboxAccount)
	opts.Accounts = append(opts.Accounts, acc)
	return acc
}

// lockStoreDir makes dir (0700) and holds its lock file, so that two
// hives never open one store: JetStream does not lock it.
func lockStoreDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bus: hub store %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("bus: hub store lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("bus: hub store %s is held by another hive: %w", dir, err)
	}
	return f, nil
}

// outboxSetup is what the edge server's options hold for the outbox
// before it starts: the store's lock and its user's key.
type outboxSetup struct {
	lock *os.File
	key  nkeys.KeyPair
	pub  string
}

// prepareOutbox locks the store and adds its account and in-process
// user to opts, the edge server's.
func prepareOutbox(opts *server.Options, cfg StoreConfig) (*outboxSetup, error) {
	lock, err := lockStoreDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	kp, pub, err := newUserKey()
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("bus: hub outbox key: %w", err)
	}
	acc := outboxOptions(opts, cfg)
	opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: pub, Account: acc,
		AllowedConnectionTypes: map[string]struct{}{"IN_PROCESS": {}}})
	return &outboxSetup{lock: lock, key: kp, pub: pub}, nil
}

// openOutbox enables JetStream for the outbox's account, makes the
// stream and starts the forwarder toward the hub's ingest URLs.
func openOutbox(e *edge, b *Bus, set *outboxSetup, cfg Config) (*outbox, error) {
	o := &outbox{cfg: cfg.Store, setup: set, log: e.log.With("component", "hub-outbox"), subject: e.perHive,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), dropped: map[string]*atomic.Uint64{}}
	for _, r := range dropReasons {
		o.dropped[r] = new(atomic.Uint64)
	}
	acc, err := e.ns.LookupAccount(outboxAccount)
	if err != nil {
		return nil, fmt.Errorf("bus: hub outbox account: %w", err)
	}
	if err := enableAccountJS(acc); err != nil {
		return nil, err
	}
	if o.nc, err = b.connect(e.ns, set.pub, set.key, "hub-outbox"); err != nil {
		return nil, err
	}
	if err := o.openStream(context.Background()); err != nil {
		o.nc.Close()
		return nil, err
	}
	if _, err := o.nc.Subscribe(outboxAcks, o.onStoreAck); err != nil {
		o.nc.Close()
		return nil, fmt.Errorf("bus: hub outbox acks: %w", err)
	}
	if err := o.dialHub(cfg.HubIngest, cfg.HubTLS, cfg.Name); err != nil {
		o.nc.Close()
		return nil, err
	}
	o.done.Add(1)
	go o.forwardLoop()
	return o, nil
}

func enableAccountJS(acc *server.Account) error {
	lim := map[string]server.JetStreamAccountLimits{"": {MaxMemory: -1, MaxStore: -1, MaxStreams: 1, MaxConsumers: 1}}
	if err := acc.EnableJetStream(lim, nil); err != nil {
		return fmt.Errorf("bus: hub outbox: enable JetStream: %w", err)
	}
	return nil
}

// openStream makes (or finds, after a restart) the stream and starts
// forwarding at its first event: what is there was never acknowledged.
func (o *outbox) openStream(ctx context.Context) error {
	js, err := jetstream.New(o.nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: outboxStream, Subjects: []string{outboxSubject}, Storage: jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld,
		MaxAge: o.cfg.MaxAge, MaxBytes: o.cfg.MaxBytes, MaxMsgs: -1,
		// The store's writer is the bridge, once per event: a resend
		// never reaches it, so keep the de-duplication window small.
		Duplicates:  time.Second,
		AllowDirect: true,
	})
	if err != nil {
		return fmt.Errorf("bus: hub outbox stream: %w", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("bus: hub outbox stream: %w", err)
	}
	o.stream = st
	o.next.Store(max(info.State.FirstSeq, 1))
	o.stored.Store(info.State.LastSeq)
	if info.State.Msgs > 0 {
		o.log.Info("hub outbox: events kept from before the restart will be forwarded", "events", info.State.Msgs,
			"first", info.State.FirstTime.UTC().Format(time.RFC3339))
	}
	return nil
}

func (o *outbox) forwardedN() uint64 {
	if o == nil {
		return 0
	}
	return o.forwarded.Load()
}

func (o *outbox) droppedN(reason string) uint64 {
	if o == nil {
		return 0
	}
	return o.dropped[reason].Load()
}

// stateTTL is how long the store's content read for a scrape serves.
const stateTTL = 250 * time.Millisecond

// storeState is what the store holds: every event there waits for the
// hub's acknowledgement (a forwarded one is deleted at once).
type storeState struct {
	at     time.Time
	msgs   uint64
	oldest time.Time
}

// current reads the store's content, or the last read within stateTTL.
func (o *outbox) current(now time.Time) storeState {
	o.stateMu.Lock()
	defer o.stateMu.Unlock()
	if now.Sub(o.state.at) < stateTTL {
		return o.state
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if info, err := o.stream.Info(ctx); err == nil {
		o.state = storeState{at: now, msgs: info.State.Msgs, oldest: info.State.FirstTime}
	}
	return o.state
}

// backlog is the events stored and not yet acknowledged by the hub.
// A nil outbox (no store) has none, as its other figures.
func (o *outbox) backlog() uint64 {
	if o == nil {
		return 0
	}
	return o.current(time.Now()).msgs
}

// oldestAge is how long the oldest event not yet acknowledged has waited.
func (o *outbox) oldestAge(now time.Time) float64 {
	if o == nil {
		return 0
	}
	st := o.current(now)
	if st.msgs == 0 {
		return 0
	}
	return max(now.Sub(st.oldest).Seconds(), 0)
}

// close stops the forwarder, then the connections. What is stored and
// not acknowledged stays for the next start.
func (o *outbox) close() {
	close(o.quit)
	o.done.Wait()
	if o.hub != nil {
		o.hub.Close()
	}
	if o.nc != nil {
		drainAndWait(o.nc, time.Second)
	}
}

// unlock lets the store go, after the server that wrote it has stopped.
func (s *outboxSetup) unlock() {
	if s != nil {
		_ = s.lock.Close()
	}
}

// eventID is an event's id for the hub's de-duplication: the hive's
// subject's last token (its id) and the event's own timestamp, which
// has nanoseconds and is unique within a hive. The timestamp is the
// first "timestamp" key of the event (wire.TelemetryEvent's order:
// hive_info before it holds none).
func eventID(subject string, data []byte) string {
	hive := subject[strings.LastIndexByte(subject, '.')+1:]
	const key = `"timestamp":"`
	if i := bytes.Index(data, []byte(key)); i >= 0 {
		rest := data[i+len(key):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 && j <= 64 {
			return hive + "/" + string(rest[:j])
		}
	}
	return hive + "/" + strconv.Itoa(len(data)) // not an event; never de-duplicated by accident
}

func (c StoreConfig) withDefaults() StoreConfig {
	d := DefaultStoreConfig
	if c.MaxAge <= 0 {
		c.MaxAge = d.MaxAge
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = d.MaxBytes
	}
	if c.Rate <= 0 {
		c.Rate = d.Rate
	}
	return c
}
