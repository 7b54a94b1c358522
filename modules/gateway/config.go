package gateway

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures the gateway.
type Config struct {
	// Listen is the HTTP address, "0.0.0.0:7835" by default (the Queen
	// reaches hives over the network).
	Listen string
	// Token, when set, is the bearer token every request but GET /health
	// needs (reads too unless Access is AccessOpenReads). When empty,
	// state-changing requests are accepted from loopback only, unless
	// Access is AccessOpen.
	Token string
	// ReadToken, when set, is a second bearer token that reads (streams,
	// capabilities, metrics, job narration) and controls nothing: for a
	// Queen or dashboard that only reads. With it set, reads need a
	// token (this one or Token) even without Token.
	ReadToken string
	Access    string
	// CORSOrigins may read the read-only routes from a browser: "*" for
	// any, none for no CORS. State-changing routes never allow CORS.
	CORSOrigins []string
	// Hosts are the names, besides IP literals and localhost, that a
	// control request without a token may address in its Host header:
	// the machine's name and its advertised one. A page whose own name
	// resolves to this hive (DNS rebinding) addresses another name and is
	// refused in every access mode. With a token the token decides.
	Hosts []string
	// MaxConns and MaxConnsPerIP cap open HTTP connections; past them a
	// connection is answered 503 and closed.
	MaxConns      int
	MaxConnsPerIP int
	// BodyTimeout bounds the reading of a request body.
	BodyTimeout time.Duration
	// HiveID filters hive.telemetry: events of other hives (arriving over
	// a leafnode) are not this hive's stream.
	HiveID string
	// History is how many events Last-Event-ID can resume from.
	History int
	// FirstEventID is the id of the first event; 0 means the start time
	// in Unix milliseconds. Ids then grow by one per event, so ids of a
	// later run are larger than any id of an earlier one (at most one
	// event per millisecond): a Last-Event-ID from before a restart reads
	// as older than the history, never as one of its events.
	FirstEventID uint64
	// QueueSize bounds each SSE client's backlog, in events.
	QueueSize int
	// KeepAlive is the longest a stream stays silent.
	KeepAlive time.Duration
	// WriteTimeout bounds each write to a client.
	WriteTimeout time.Duration
	// RetryHint is sent as the SSE retry: field.
	RetryHint time.Duration
	// ShutdownTimeout bounds the HTTP server's graceful shutdown.
	ShutdownTimeout time.Duration

	// TLS, when its certificate is set, serves HTTPS.
	TLS TLSConfig

	// Metrics is what GET /metrics serves: the hive's one registry, which
	// every module registers its own series with. nil serves an empty one.
	Metrics prometheus.Gatherer
}

// DefaultConfig returns the defaults of the original daemon's wire, and
// the access policy that is safe on a network: reads need the token when
// one is set, control needs it (or loopback).
func DefaultConfig() Config {
	return Config{
		Listen:          "0.0.0.0:7835",
		Access:          AccessToken,
		CORSOrigins:     []string{"*"},
		MaxConns:        1024,
		MaxConnsPerIP:   128,
		BodyTimeout:     10 * time.Second,
		History:         60,
		QueueSize:       16,
		KeepAlive:       15 * time.Second,
		WriteTimeout:    10 * time.Second,
		RetryHint:       3 * time.Second,
		ShutdownTimeout: time.Second,
	}
}

// Access levels: who may read (streams, capabilities, metrics) and who
// may change state (jobs, shutdown, a new Queen).
const (
	// AccessToken: with a token, reads and control need it; without one,
	// reads are open and control is accepted from loopback only.
	AccessToken = "token"
	// AccessOpenReads: reads need no token; control as AccessToken.
	AccessOpenReads = "open-reads"
	// AccessOpen: without a token, control from anywhere (the original's
	// behaviour; unsafe). Not allowed with a token, which it would void.
	AccessOpen = "open"
)

// MinTokenLen is the shortest API token accepted: anything shorter is
// guessable.
const MinTokenLen = 16

// Validate reports every setting the gateway cannot run with.
func (c Config) Validate() error {
	var errs []error
	if _, p, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("gateway: listen %q: %w", c.Listen, err))
	} else if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		errs = append(errs, fmt.Errorf("gateway: listen %q: bad port", c.Listen))
	}
	switch c.Access {
	case AccessToken, AccessOpenReads:
	case AccessOpen:
		if c.Token != "" {
			errs = append(errs, errors.New("gateway: access \"open\" with an API token set: the token would guard nothing; drop one"))
		}
	default:
		errs = append(errs, fmt.Errorf("gateway: access %q: want token, open-reads or open", c.Access))
	}
	if c.Token != "" && len(c.Token) < MinTokenLen {
		errs = append(errs, fmt.Errorf("gateway: API token shorter than %d characters; use a random one (openssl rand -hex 32)", MinTokenLen))
	}
	switch {
	case c.ReadToken == "":
	case len(c.ReadToken) < MinTokenLen:
		errs = append(errs, fmt.Errorf("gateway: read token shorter than %d characters; use a random one (openssl rand -hex 32)", MinTokenLen))
	case c.ReadToken == c.Token:
		errs = append(errs, errors.New("gateway: the read token is the API token: a read token must be another one"))
	case c.Access != AccessToken:
		errs = append(errs, fmt.Errorf("gateway: access %q with a read token: reads are open, so the read token would guard nothing", c.Access))
	}
	for name, v := range map[string]int{"history": c.History, "queue size": c.QueueSize, "max conns": c.MaxConns, "max conns per ip": c.MaxConnsPerIP} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("gateway: %s %d must be at least 1", name, v))
		}
	}
	for name, v := range map[string]time.Duration{"keep-alive": c.KeepAlive, "write timeout": c.WriteTimeout, "retry hint": c.RetryHint,
		"shutdown timeout": c.ShutdownTimeout} {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("gateway: %s %v must be positive", name, v))
		}
	}
	if err := c.TLS.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.BodyTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("gateway: body timeout %v too short (min 100ms)", c.BodyTimeout))
	}
	return errors.Join(errs...)
}
