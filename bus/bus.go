package bus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/rbee/hive/bus/wire"
)

// ErrClosed is returned by Connect after Close.
var ErrClosed = errors.New("bus: closed")

// Config selects how the bus is exposed.
type Config struct {
	// Name is the server name (the hive id is a good choice).
	Name string
	// Listen is host:port for external NATS clients (observers). Empty
	// means no TCP listener: only in-process connections work.
	Listen string
	// ReadyTimeout bounds how long Start waits for each server.
	ReadyTimeout time.Duration
	// Hub is the URL of a hub NATS leafnode port (nats-leaf://[user:pass@]
	// host:7422), or a comma-separated list of the nodes of a hub cluster;
	// "" runs without a hub. The leaf connection is retried forever, every
	// HubReconnect (0: 500 ms) on the next listed node.
	Hub          string
	HubReconnect time.Duration
	// HubExports are the subjects that leave the hive toward observers and
	// the hub, each literal (no wildcard), published through a Conn's
	// Publish or PublishMsg; nil means DefaultHubExports.
	HubExports []string
	// HubHiveID, when set, also sends hive.telemetry to the hub as
	// TelemetrySubjectFor(HubHiveID), so a hub stream can keep and serve
	// one hive's history; the plain subject is sent as before.
	HubHiveID string
	// HubIngest lists the hub nodes' client URLs with the ingest user
	// (tls://hive:pass@host:4222,...): the hub's history takes this
	// hive's telemetry from there, each event acknowledged, kept in
	// Store until it is. "" sends the history nothing.
	HubIngest string
	// Store bounds what is kept for the hub; its Dir "" keeps nothing.
	Store StoreConfig
	// Observers bounds what external clients may hold.
	Observers ObserverLimits
	// ObserverUser and ObserverPassword, when both are set, are the
	// credentials external clients must present; otherwise a client
	// without credentials is the (read-only) observer.
	ObserverUser     string
	ObserverPassword string
	// TLS, when set, is required of external clients on Listen (in-process
	// connections need none); with RequireAndVerifyClientCert they must
	// show a certificate its ClientCAs verify. Its GetCertificate may
	// serve a pair that changes (internal/tlsfiles): no restart.
	TLS *tls.Config
	// HubTLS, when set, makes the leafnode to the hub TLS: RootCAs verify
	// the hub, GetClientCertificate answers a hub that asks for one.
	HubTLS *tls.Config
}

// ObserverLimits bound external NATS clients so that none can slow the
// hive: they are cut, never waited on. Zero fields take the defaults.
type ObserverLimits struct {
	MaxConns      int           // connections at once (default 64)
	MaxSubs       int           // subscriptions per connection (default 128; the hub leaf counts too)
	MaxPending    int64         // bytes queued for one client before it is cut (default 2 MiB)
	WriteDeadline time.Duration // longest a write to one client may block (default 2 s)
}

// DefaultObserverLimits are the limits used for zero fields.
var DefaultObserverLimits = ObserverLimits{MaxConns: 64, MaxSubs: 128, MaxPending: 2 << 20, WriteDeadline: 2 * time.Second}

// DefaultHubExports is what a hive sends observers and its hub: telemetry
// and nothing else. Nothing from outside ever enters the hive.
var DefaultHubExports = []string{wire.SubjectTelemetry}

// Bus is the hive's message bus: an embedded nats-server that only
// in-process modules reach, plus, when anything external is configured, an
// edge server for external clients and the hub that receives the exported
// subjects through a bridge. A client of the edge server, however slow or
// hostile, can delay only the edge: the modules' server never writes to a
// socket.
type Bus struct {
	ns   *server.Server
	edge *edge
	log  *slog.Logger
	key  nkeys.KeyPair
	pub  string

	undecodable atomic.Uint64 // messages the typed helpers could not decode

	mu     sync.Mutex
	conns  []*nats.Conn
	closed bool
}

// Start runs the embedded servers and returns once they accept
// connections.
func Start(cfg Config, log *slog.Logger) (*Bus, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := cfg.withDefaults(log)
	if err != nil {
		return nil, err
	}
	kp, pub, err := newUserKey()
	if err != nil {
		return nil, fmt.Errorf("bus: internal key: %w", err)
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		NoSigs:     true, // signals belong to cmd/; nats would os.Exit on SIGTERM
		DontListen: true,
		// No $SYS account: nothing reads server events here, and its
		// statsz heartbeat (every 10 s, after a ramp from 250 ms) and
		// event loop would be the only work of an idle server.
		NoSystemAccount: true,
		Host:            "127.0.0.1",
		// In-process only: a scrape or a telemetry event of a thousand
		// workers may pass 1 MiB, the default.
		MaxPayload: 8 << 20,
		Nkeys: []*server.NkeyUser{
			{Nkey: pub, AllowedConnectionTypes: map[string]struct{}{"IN_PROCESS": {}}},
		},
	}
	ns, err := startServer(opts, cfg.ReadyTimeout, log.With("component", "nats"))
	if err != nil {
		return nil, err
	}
	b := &Bus{ns: ns, log: log, key: kp, pub: pub}
	if cfg.Listen != "" || cfg.Hub != "" || cfg.HubIngest != "" {
		e, err := startEdge(cfg, b, log.With("component", "nats-edge"))
		if err != nil {
			ns.Shutdown()
			ns.WaitForShutdown()
			return nil, err
		}
		b.edge = e
	}
	return b, nil
}

// startServer starts a configured server with a logger that reports fatal
// startup errors instead of exiting.
func startServer(opts *server.Options, timeout time.Duration, log *slog.Logger) (*server.Server, error) {
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bus: new server: %w", err)
	}
	nl := newNATSLogger(log)
	ns.SetLoggerV2(nl, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(timeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		select {
		case msg := <-nl.fatal:
			return nil, fmt.Errorf("bus: start: %s", msg)
		default:
			return nil, errors.New("bus: server not ready")
		}
	}
	return ns, nil
}

func newUserKey() (nkeys.KeyPair, string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, "", err
	}
	return kp, pub, nil
}

// Connect returns a new in-process connection. The bus owns it: Close
// drains it, although a module may close it earlier.
func (b *Bus) Connect(name string) (*Conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	nc, err := b.connect(b.ns, b.pub, b.key, name)
	if err != nil {
		return nil, err
	}
	b.conns = append(b.conns, nc)
	return &Conn{Conn: nc, name: name, bad: &b.undecodable, log: b.log, edge: b.edge}, nil
}

// Undecodable counts the messages the typed helpers dropped because they
// did not decode, over every connection of this bus.
func (b *Bus) Undecodable() uint64 { return b.undecodable.Load() }

func (b *Bus) connect(ns *server.Server, pub string, key nkeys.KeyPair, name string) (*nats.Conn, error) {
	nc, err := nats.Connect("",
		nats.InProcessServer(ns),
		nats.Nkey(pub, key.Sign),
		nats.Name(name),
		// In-process connections cannot outlive the server; reconnecting
		// would only leak goroutines during shutdown.
		nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			b.log.Warn("bus async error", "conn", name, "subject", subj, "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("bus: connect %s: %w", name, err)
	}
	return nc, nil
}

// ClientURL is the TCP URL external clients use, or "" without a listener.
func (b *Bus) ClientURL() string {
	if b.edge == nil || b.edge.ns.Addr() == nil {
		return ""
	}
	return b.edge.ns.ClientURL()
}

// BridgeDropped counts exported messages the edge could not take in time
// (its clients were slow) and that were dropped for them.
func (b *Bus) BridgeDropped() uint64 {
	if b.edge == nil {
		return 0
	}
	return b.edge.dropped()
}

// HubTrimmed counts the telemetry events whose hub copy was cut to
// wire.MaxHubEventBytes.
func (b *Bus) HubTrimmed() uint64 {
	if b.edge == nil {
		return 0
	}
	return b.edge.hubTrimmed.Load()
}

// Close drains every connection handed out, then shuts the servers down.
// It is safe to call more than once.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	conns := b.conns
	b.conns = nil
	b.mu.Unlock()

	for _, nc := range conns {
		drainAndWait(nc, 2*time.Second)
	}
	if b.edge != nil {
		b.edge.close()
	}
	b.ns.Shutdown()
	b.ns.WaitForShutdown()
	return nil
}

func (b *Bus) outbox() *outbox {
	if b.edge == nil {
		return nil
	}
	return b.edge.outbox
}

// HubStoreHealth is why the hub store cannot keep telemetry (a full
// disk), or "" while it can or when there is none: for the hive's
// health, which it degrades.
func (b *Bus) HubStoreHealth() string { return b.outbox().health() }

// HubBacklog is the events kept for the hub and not yet acknowledged.
func (b *Bus) HubBacklog() uint64 { return b.outbox().backlog() }

// HubConnected reports whether the leafnode to the hub is up.
func (b *Bus) HubConnected() bool { return b.edge != nil && b.edge.ns.NumLeafNodes() > 0 }

// drainAndWait drains nc so in-flight messages are delivered, and falls back
// to Close if draining takes longer than timeout.
func drainAndWait(nc *nats.Conn, timeout time.Duration) {
	if nc.IsClosed() {
		return
	}
	done := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(done) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-done:
	case <-time.After(timeout):
		nc.Close()
	}
}

func splitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	if port == 0 {
		port = -1 // nats-server: -1 picks a free port, 0 means the default 4222
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// withDefaults fills cfg's zero fields and checks what goes together.
func (cfg Config) withDefaults(log *slog.Logger) (Config, error) {
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 5 * time.Second
	}
	if cfg.HubExports == nil {
		cfg.HubExports = DefaultHubExports
	}
	for _, s := range cfg.HubExports {
		if strings.ContainsAny(s, "*> \t") || s == "" {
			return cfg, fmt.Errorf("bus: export %q: want a literal subject", s)
		}
	}
	cfg.Observers = cfg.Observers.withDefaults()
	cfg.Store = cfg.Store.withDefaults()
	switch {
	case cfg.HubIngest != "" && cfg.Store.Dir == "":
		return cfg, errors.New("bus: nats.hub-ingest needs a store for what the hub has not acknowledged: give the hive a state dir")
	case cfg.HubIngest != "" && cfg.HubHiveID == "":
		return cfg, errors.New("bus: nats.hub-ingest needs the hive's id")
	case cfg.Hub != "" && cfg.HubIngest == "":
		log.Warn("a hub without nats.hub-ingest: live telemetry reaches it, its history keeps nothing of this hive")
	}
	return cfg, nil
}

func (l ObserverLimits) withDefaults() ObserverLimits {
	d := DefaultObserverLimits
	if l.MaxConns <= 0 {
		l.MaxConns = d.MaxConns
	}
	if l.MaxSubs <= 0 {
		l.MaxSubs = d.MaxSubs
	}
	if l.MaxPending <= 0 {
		l.MaxPending = d.MaxPending
	}
	if l.WriteDeadline <= 0 {
		l.WriteDeadline = d.WriteDeadline
	}
	return l
}
