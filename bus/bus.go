package bus

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// ErrClosed is returned by Connect after Close.
var ErrClosed = errors.New("bus: closed")

// Config selects how the embedded server is exposed.
type Config struct {
	// Name is the server name (the hive id is a good choice).
	Name string
	// Listen is host:port for external NATS clients. Empty means no TCP
	// listener: only in-process connections work.
	Listen string
	// ReadyTimeout bounds how long Start waits for the server.
	ReadyTimeout time.Duration
	// Hub is the URL of a hub NATS leafnode port (nats-leaf://[user:pass@]
	// host:7422); "" runs without a hub. The leaf connection is retried
	// forever, every HubReconnect plus up to as much again of jitter.
	Hub          string
	HubReconnect time.Duration
	// HubExports are the subjects that leave the hive toward the hub;
	// nil means DefaultHubExports.
	HubExports []string
}

// DefaultHubExports is what a hive sends its hub: telemetry and nothing
// else. Nothing from the hub ever enters the hive.
var DefaultHubExports = []string{SubjectTelemetry}

// Account names. Modules and observers live in hiveAccount; the leafnode
// to the hub is bound to hubAccount, which sees only the exports.
const (
	hiveAccount = "HIVE"
	hubAccount  = "HUB"
)

// Authentication: modules use a per-process NKey valid for in-process
// connections only; an external TCP client without credentials is the
// observer, which may subscribe to telemetry and publish nothing.

// Bus is a running embedded NATS server plus the in-process connections it
// handed out. Close drains those connections, then stops the server.
type Bus struct {
	ns  *server.Server
	log *slog.Logger
	key nkeys.KeyPair
	pub string

	mu     sync.Mutex
	conns  []*nats.Conn
	closed bool
}

// Start runs an embedded nats-server and returns once it accepts
// connections. External TCP clients (cfg.Listen) are mapped to an observer
// user that may subscribe to telemetry but publish nothing.
func Start(cfg Config, log *slog.Logger) (*Bus, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 5 * time.Second
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("bus: internal key: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("bus: internal key: %w", err)
	}
	// The observer is whoever connects over TCP without credentials
	// (NoAuthUser). Its key pair is thrown away: it is never used to sign.
	obs, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("bus: observer key: %w", err)
	}
	obsPub, err := obs.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("bus: observer key: %w", err)
	}
	hiveAcc := server.NewAccount(hiveAccount)
	opts := &server.Options{
		ServerName: cfg.Name,
		NoSigs:     true, // signals belong to cmd/; nats would os.Exit on SIGTERM
		DontListen: cfg.Listen == "",
		// Loopback unless told otherwise: the default 0.0.0.0 would expose the bus.
		Host:     "127.0.0.1",
		Port:     -1,
		Accounts: []*server.Account{hiveAcc},
		Nkeys: []*server.NkeyUser{
			{Nkey: pub, Account: hiveAcc, AllowedConnectionTypes: map[string]struct{}{"IN_PROCESS": {}}},
			{Nkey: obsPub, Account: hiveAcc, Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Deny: []string{">"}},
				Subscribe: &server.SubjectPermission{Allow: []string{SubjectTelemetry, SubjectTelemetry + ".>"}},
			}},
		},
		NoAuthUser:          obsPub,
		LameDuckDuration:    2 * time.Second,
		LameDuckGracePeriod: 500 * time.Millisecond,
	}
	if cfg.Listen != "" {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("bus: listen address %q: %w", cfg.Listen, err)
		}
		opts.Host, opts.Port = host, port
	}
	if cfg.Hub != "" {
		if err := addHub(opts, hiveAcc, cfg); err != nil {
			return nil, err
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bus: new server: %w", err)
	}
	fatal := make(chan string, 1)
	ns.SetLoggerV2(&natsLogger{log: log.With("component", "nats"), fatal: fatal}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		select {
		case msg := <-fatal:
			return nil, fmt.Errorf("bus: start: %s", msg)
		default:
			return nil, errors.New("bus: server not ready")
		}
	}
	b := &Bus{ns: ns, log: log, key: kp, pub: pub}
	if cfg.Listen != "" {
		log.Info("nats listening", "url", ns.ClientURL())
	}
	return b, nil
}

// Connect returns a new in-process connection. The bus owns it: Close
// drains it, although a module may close it earlier.
func (b *Bus) Connect(name string) (*nats.Conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	nc, err := nats.Connect("",
		nats.InProcessServer(b.ns),
		nats.Nkey(b.pub, b.key.Sign),
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
	b.conns = append(b.conns, nc)
	return nc, nil
}

// ClientURL is the TCP URL external clients use, or "" without a listener.
func (b *Bus) ClientURL() string {
	if b.ns.Addr() == nil {
		return ""
	}
	return b.ns.ClientURL()
}

// Server exposes the embedded server for monitoring and tests.
func (b *Bus) Server() *server.Server { return b.ns }

// Close drains every connection handed out, then shuts the server down.
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
	b.ns.Shutdown()
	b.ns.WaitForShutdown()
	return nil
}

// addHub binds a leafnode remote to an account that imports only the
// exported subjects from the hive's account. Deny lists would be the
// other way, but denying imports also hides the hub's interest, which stops
// exports too; separate accounts make "only these subjects, one way" hold
// by construction.
func addHub(opts *server.Options, hiveAcc *server.Account, cfg Config) error {
	u, err := url.Parse(cfg.Hub)
	if err != nil || u.Host == "" {
		return fmt.Errorf("bus: hub URL %q: want nats-leaf://[user:pass@]host:port", cfg.Hub)
	}
	switch u.Scheme {
	case "nats-leaf", "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("bus: hub URL %q: unsupported scheme %q", cfg.Hub, u.Scheme)
	}
	exports := cfg.HubExports
	if exports == nil {
		exports = DefaultHubExports
	}
	hubAcc := server.NewAccount(hubAccount)
	for _, subj := range exports {
		if err := hiveAcc.AddStreamExport(subj, []*server.Account{hubAcc}); err != nil {
			return fmt.Errorf("bus: export %s: %w", subj, err)
		}
		if err := hubAcc.AddStreamImport(hiveAcc, subj, ""); err != nil {
			return fmt.Errorf("bus: import %s: %w", subj, err)
		}
	}
	opts.Accounts = append(opts.Accounts, hubAcc)
	opts.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: []*url.URL{u}, LocalAccount: hubAccount}}
	opts.LeafNode.ReconnectInterval = cfg.HubReconnect
	if opts.LeafNode.ReconnectInterval <= 0 {
		opts.LeafNode.ReconnectInterval = time.Second
	}
	return nil
}

// HubConnected reports whether the leafnode to the hub is up.
func (b *Bus) HubConnected() bool { return b.ns.NumLeafNodes() > 0 }

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
