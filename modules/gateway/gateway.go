// Package gateway is the hive's only HTTP edge: health, the telemetry SSE
// stream and the request routes, all turned into bus traffic.
package gateway

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/ratelog"
	"github.com/rbee/hive/internal/text"
	"github.com/rbee/hive/internal/tlsfiles"
)

// Gateway is the HTTP module.
type Gateway struct {
	cfg    Config
	bus    *bus.Bus
	log    *slog.Logger
	fanout *fanout
	// token is the SHA-256 of Config.Token at start, nil without one: it
	// fixes the access mode; tokenSum is the token requests need now.
	token []byte

	denied      atomic.Uint64                     // requests refused by access checks
	shed        atomic.Uint64                     // connections refused past a cap
	streamsShed atomic.Uint64                     // streams refused at their client's stream share
	certs       atomic.Pointer[tlsfiles.Pair]     // the served pair, with TLS
	tokenSum    atomic.Pointer[[sha256.Size]byte] // the token now; SetToken replaces it
	// readToken is the read token's hash at start, nil without one; readSum
	// the one reads take now (SetReadToken).
	readToken   []byte
	readSum     atomic.Pointer[[sha256.Size]byte]
	streams     streamCreds              // streams a token let in, ended when it is revoked
	corsOrigins atomic.Pointer[[]string] // cfg.CORSOrigins now; SetCORSOrigins replaces it
	liveDropped atomic.Uint64            // live job events a slow stream missed (recovered from the replay)
	jobStreams  sync.WaitGroup           // job streams' handlers, which outlive net/http's Shutdown (hijacked)
	ln          *limitListener
	// serverLog is net/http's own error log (TLS handshakes that fail,
	// panics), rate-limited: a peer makes one line per attempt.
	serverLog *ratelog.Limiter
	// handshakesCut counts TLS handshakes cut at maxHandshakeBytes.
	handshakesCut atomic.Uint64

	ready    chan struct{}
	addr     net.Addr
	stopping chan struct{}
}

// net/http's error log: 20 lines, then 5 a second (as nats-server's).
const (
	serverLogBurst = 20
	serverLogRate  = 5
)

// New validates cfg and registers the gateway's metrics with reg (nil: not
// exported). It starts nothing.
func New(cfg Config, b *bus.Bus, log *slog.Logger, reg prometheus.Registerer) (*Gateway, error) {
	if b == nil {
		return nil, errors.New("gateway: nil bus")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	token, tokenSum := tokenDigest(cfg.Token)
	readToken, readSum := tokenDigest(cfg.ReadToken)
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	g := &Gateway{
		token:    token,
		cfg:      cfg,
		bus:      b,
		log:      log.With("module", "gateway"),
		fanout:   newFanout(cfg.History, cfg.QueueSize, cmp.Or(cfg.FirstEventID, uint64(time.Now().UnixMilli()))),
		ready:    make(chan struct{}),
		stopping: make(chan struct{}),
	}
	g.serverLog = ratelog.New(g.log.With("source", "net/http"), serverLogBurst, serverLogRate)
	g.tokenSum.Store(tokenSum)
	g.readToken = readToken
	g.readSum.Store(readSum)
	g.SetCORSOrigins(cfg.CORSOrigins)
	if err := g.register(reg); err != nil {
		return nil, fmt.Errorf("gateway: metrics: %w", err)
	}
	return g, nil
}

// withDefaults fills what is zero with DefaultConfig's value;
// CORSOrigins is the exception: an empty, non-nil list turns CORS off.
func (cfg Config) withDefaults() Config {
	def := DefaultConfig()
	cfg.Access = cmp.Or(cfg.Access, def.Access)
	cfg.Listen = cmp.Or(cfg.Listen, def.Listen)
	if cfg.CORSOrigins == nil {
		cfg.CORSOrigins = def.CORSOrigins
	}
	cfg.History = cmp.Or(cfg.History, def.History)
	cfg.QueueSize = cmp.Or(cfg.QueueSize, def.QueueSize)
	cfg.MaxConns = cmp.Or(cfg.MaxConns, def.MaxConns)
	cfg.MaxConnsPerIP = cmp.Or(cfg.MaxConnsPerIP, def.MaxConnsPerIP)
	cfg.KeepAlive = cmp.Or(cfg.KeepAlive, def.KeepAlive)
	cfg.WriteTimeout = cmp.Or(cfg.WriteTimeout, def.WriteTimeout)
	cfg.RetryHint = cmp.Or(cfg.RetryHint, def.RetryHint)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, def.ShutdownTimeout)
	cfg.BodyTimeout = cmp.Or(cfg.BodyTimeout, def.BodyTimeout)
	return cfg
}

// tokenDigest is a token's SHA-256, as a slice and as the array the
// comparisons load; both nil for no token.
func tokenDigest(token string) ([]byte, *[sha256.Size]byte) {
	if token == "" {
		return nil, nil
	}
	sum := sha256.Sum256([]byte(token))
	return sum[:], &sum
}

// Ready is closed once the gateway listens; Addr is valid from then on.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// Addr is the bound address. Only valid after Ready.
func (g *Gateway) Addr() net.Addr { return g.addr }

// ListenAddr is the bound address as configured: its host as given (a
// listener on 0.0.0.0 reports [::], which says the same less plainly),
// its port as bound. Only valid after Ready.
func (g *Gateway) ListenAddr() string {
	host, _, err := net.SplitHostPort(g.cfg.Listen)
	_, port, err2 := net.SplitHostPort(g.addr.String())
	if err != nil || err2 != nil {
		return g.addr.String()
	}
	return net.JoinHostPort(host, port)
}

// Run subscribes to telemetry, listens and serves until ctx ends, then
// ends every stream and shuts the server down.
func (g *Gateway) Run(ctx context.Context) error {
	nc, err := g.bus.Connect("gateway")
	if err != nil {
		return err
	}
	defer nc.Close()
	tele, load, err := g.subscribe(nc)
	if err != nil {
		return err
	}
	defer func() { _ = tele.Unsubscribe(); _ = load.Unsubscribe() }()
	srv, ln, err := g.listen(nc)
	if err != nil {
		return err
	}
	close(g.ready)
	g.log.Info("gateway listening", "addr", g.ListenAddr(), "tls", g.cfg.TLS.enabled(), "auth", g.authMode(),
		"max_conns", g.cfg.MaxConns, "max_conns_per_ip", g.cfg.MaxConnsPerIP)

	g.fanout.start()
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "") // the pair comes from GetCertificate
			return
		}
		errc <- srv.Serve(ln)
	}()
	serveErr := g.keepAliveUntil(ctx, errc)
	// Events published before the stop (the collector's last, "stopping")
	// still reach the streams.
	bus.Drain(tele, time.Second)
	g.stopServing(srv)
	if serveErr == nil {
		<-errc
	}
	g.jobStreams.Wait()
	return serveErr
}

// subscribe follows this hive's telemetry (into the history and every
// stream) and the engines' load pushes (live, to ?events=load streams).
// The fan-out never blocks, so the subscriptions can afford the client
// library's default pending limits.
func (g *Gateway) subscribe(nc *bus.Conn) (tele, load *bus.Sub, err error) {
	// Another hive's telemetry (over a leafnode) is not this hive's stream;
	// the bus's accounts keep it out already, the filter is the second lock.
	tele, err = bus.SubscribeTelemetry(nc, g.cfg.HiveID, func(data []byte) { g.fanout.publish(sseTelemetryEvent, data) })
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: subscribe: %w", err)
	}
	load, err = bus.Subscribe(nc, wire.SubjectLoad, func(ev json.RawMessage) { g.fanout.publishLive(sseLoadEvent, ev) })
	if err != nil {
		_ = tele.Unsubscribe()
		return nil, nil, fmt.Errorf("gateway: subscribe: %w", err)
	}
	// Ready must mean subscribed: the server has to know the interest
	// before an event published right after Ready can reach us.
	if err := nc.Flush(); err != nil {
		_ = tele.Unsubscribe()
		_ = load.Unsubscribe()
		return nil, nil, fmt.Errorf("gateway: flush: %w", err)
	}
	return tele, load, nil
}

// stopServing ends the telemetry streams and the server within the one
// budget. The streams are the fan-out's, not the server's (their
// connections are hijacked), and end after the events published before
// the stop.
func (g *Gateway) stopServing(srv *http.Server) {
	streamsEnded := make(chan struct{})
	go func() { g.fanout.close(g.cfg.ShutdownTimeout); close(streamsEnded) }()
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-streamsEnded
}

// listen binds the HTTP address behind the connection caps and makes the
// server; its Shutdown closes g.stopping, which ends the job streams.
func (g *Gateway) listen(nc *bus.Conn) (*http.Server, net.Listener, error) {
	raw, err := net.Listen("tcp", g.cfg.Listen)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, nil, fmt.Errorf("gateway: listen %s: the port is in use (another hive?): move this one with --port or --listen", g.cfg.Listen)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: listen %s: %w", g.cfg.Listen, err)
	}
	ln := newLimitListener(raw, g.cfg.MaxConns, g.cfg.MaxConnsPerIP, &g.shed, &g.streamsShed)
	g.ln = ln
	g.addr = ln.Addr()
	srv := &http.Server{
		Handler: g.router(nc),
		// HTTP/1.1 only over TLS too: streams hijack their connection.
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// Handlers find their connection's slot (streamSlot).
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
		// No WriteTimeout: it would cut every SSE stream. Streams set a
		// deadline per write instead. No ReadTimeout either, for the same
		// reason: bodies are read under their own deadline (readBody).
		ErrorLog: stdlog.New(g.serverLog.Writer(slog.LevelWarn), "", 0),
	}
	if g.cfg.TLS.enabled() {
		tcfg, pair, err := g.cfg.TLS.serverTLS(g.log)
		if err != nil {
			_ = raw.Close()
			return nil, nil, err
		}
		srv.TLSConfig = capHandshakes(tcfg)
		ln.tlsCap, ln.handshakesCut = true, &g.handshakesCut
		g.certs.Store(pair)
	}
	var stopOnce sync.Once
	srv.RegisterOnShutdown(func() { stopOnce.Do(func() { close(g.stopping) }) })
	return srv, ln, nil
}

// keepAliveUntil sends keep-alives to quiet telemetry streams until ctx
// ends or the server fails (its error). It wakes when the stream would
// have been quiet for KeepAlive, not on a ticker: with events every
// second that is once per KeepAlive.
func (g *Gateway) keepAliveUntil(ctx context.Context, serveErr <-chan error) error {
	ka := time.NewTimer(g.cfg.KeepAlive)
	defer ka.Stop()
	for {
		select {
		case err := <-serveErr:
			// The listener failed: the open streams still end properly.
			return fmt.Errorf("gateway: serve: %w", err)
		case <-ctx.Done():
			return nil
		case <-ka.C:
			ka.Reset(g.fanout.keepAlive(g.cfg.KeepAlive))
		}
	}
}

func (g *Gateway) router(nc *bus.Conn) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	// A redirect is not JSON, and /health/ is not a route.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.Use(g.recoverJSON, g.bodyDeadline)
	r.NoRoute(func(c *gin.Context) {
		abortJSON(c, http.StatusNotFound, "no route "+c.Request.Method+" "+text.Truncate(c.Request.URL.Path, 200))
	})
	r.NoMethod(func(c *gin.Context) {
		abortJSON(c, http.StatusMethodNotAllowed, "method "+c.Request.Method+" not allowed on "+text.Truncate(c.Request.URL.Path, 200))
	})
	// Read-only routes answer browsers of the allowed origins (CORS) and
	// their preflights; state-changing ones never do.
	reads := func(path string, h ...gin.HandlerFunc) {
		r.GET(path, append([]gin.HandlerFunc{g.cors, noBody}, h...)...)
		r.OPTIONS(path, g.preflight)
	}
	health := func(c *gin.Context) {
		c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte("ok"))
	}
	reads("/health", health)
	r.HEAD("/health", g.cors, noBody, health)
	reads("/v1/heartbeats/stream", g.guard(read), g.streamSlot, g.streamTelemetry)
	// Capabilities are a read, unless ?queen_url= asks for a change: the
	// handler checks that itself.
	caps := g.getCapabilities(nc)
	reads("/capabilities", caps) // the Queen's path (original A)
	reads("/v1/capabilities", caps)
	r.POST("/v1/jobs", g.guard(control), requireJSON, g.readBody(maxJobBody), g.createJob(nc))
	reads("/v1/jobs/:id/stream", g.guard(read), g.streamSlot, g.streamJob(nc))
	reads("/metrics", g.guard(read), g.metricsHandler())
	// The static files answer HEAD too (uptime checkers and load balancers
	// ask it); net/http sends the headers and drops the body.
	for path, f := range map[string]gin.HandlerFunc{
		"/":                        dashboardFile("index.html", "text/html; charset=utf-8"),
		"/dashboard/dashboard.js":  dashboardFile("dashboard.js", "text/javascript; charset=utf-8"),
		"/dashboard/dashboard.css": dashboardFile("dashboard.css", "text/css; charset=utf-8"),
	} {
		r.GET(path, noBody, f)
		r.HEAD(path, noBody, f)
	}
	r.DELETE("/v1/jobs/:id", g.guard(control), requireJSON, g.readBody(maxSmallBody), g.cancelJob(nc))
	r.POST("/v1/shutdown", g.guard(control), requireJSON, g.readBody(maxSmallBody), g.shutdown(nc))
	return r
}

// connKey is the request context key of the request's *trackedConn.
type connKey struct{}

// streamSlot lets a stream start only if its client has a stream slot
// left: its last connection slots are kept for short requests, so that a
// client whose streams are at their cap can still ask /health, scrape or
// stop a job.
func (g *Gateway) streamSlot(c *gin.Context) {
	nc, _ := c.Request.Context().Value(connKey{}).(net.Conn)
	tc, ok := trackedOf(nc)
	if !ok {
		return // not through the listener (an in-process test's recorder)
	}
	if !tc.l.takeStream(tc) {
		c.Header("Retry-After", "1")
		c.Header("Connection", "close")
		abortJSON(c, http.StatusServiceUnavailable, "too many streams from this client; its remaining connections are kept for short requests")
	}
}

// authMode names the access policy for the startup log.
func (g *Gateway) authMode() string {
	switch {
	case g.cfg.TLS.ClientAuth == ClientAuthRequire && g.token != nil:
		return "client certificate required, and the token"
	case g.cfg.TLS.ClientCAFile != "" && g.cfg.TLS.ClientAuth != ClientAuthNone && g.token != nil:
		return "token or client certificate"
	case g.cfg.TLS.ClientCAFile != "" && g.cfg.TLS.ClientAuth != ClientAuthNone:
		return "client certificate (control without one: loopback only)"
	case g.token != nil && g.cfg.Access == AccessOpenReads:
		return "token (reads open)"
	case g.token != nil:
		return "token"
	case g.cfg.Access == AccessOpen:
		return "none (--access open)"
	}
	return "loopback-only control"
}
