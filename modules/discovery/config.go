package discovery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rbee/hive/bus/wire"
)

// Protocols selectable with Config.API.
const (
	APIHeartbeat = "heartbeat" // POST /v1/hive-heartbeat, then push every tick
	APIReady     = "ready"     // POST /v1/hive/ready once; the Queen subscribes to SSE
)

// DefaultDelays are the waits before the five discovery attempts, as the
// original's.
var DefaultDelays = []time.Duration{0, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}

// Config configures discovery.
type Config struct {
	// QueenURL is the Queen at start; "" is standalone until a URL arrives
	// on hive.discovery.queen.
	QueenURL string
	// DefaultQueen says QueenURL is the built-in default, not a Queen the
	// operator named: its absence is said once, not at every attempt.
	DefaultQueen bool
	API          string
	// Hive is the static hive_info used before the first telemetry event.
	Hive          wire.HiveInfo
	AdvertiseURL  string
	AdvertiseHost string
	// HiveTLS says the hive serves HTTPS: the URL it advertises is
	// https:// (an AdvertiseURL is used as given).
	HiveTLS bool
	// QueenCAFile verifies an https:// Queen instead of the system's
	// roots; ClientCertFile and ClientKeyFile are the certificate the
	// hive shows a Queen that asks for one (read again when they change).
	QueenCAFile                   string
	ClientCertFile, ClientKeyFile string
	// Delays are the waits before each discovery attempt.
	Delays []time.Duration
	// Jitter is the +- fraction applied to every wait.
	Jitter float64
	// Retry is the wait between attempts after Delays run out; 0 stops
	// trying, as the original did.
	Retry time.Duration
	// RequestTimeout bounds every POST to the Queen.
	RequestTimeout time.Duration
	// QueenAllow lists where discovery may ever send (hosts, IPs, CIDRs,
	// comma-separated); "" means the host of QueenURL alone, and nothing
	// in standalone mode.
	QueenAllow string
	// ChangeBurst and ChangeEvery rate-limit Queen changes over the bus:
	// ChangeBurst at once, then one per ChangeEvery.
	ChangeBurst int
	ChangeEvery time.Duration
	// Now is the clock of the rate limit; nil is time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx ends, reporting whether d passed; nil
	// is a timer. Tests record the waits instead of measuring them.
	Sleep func(ctx context.Context, d time.Duration) bool
}

// DefaultConfig is the original's handshake, with a slow retry instead of
// giving up, and the Queen-change limits.
func DefaultConfig() Config {
	return Config{
		QueenURL:       "http://localhost:7833",
		API:            APIHeartbeat,
		Delays:         DefaultDelays,
		Jitter:         0.1,
		Retry:          60 * time.Second,
		RequestTimeout: 5 * time.Second,
		ChangeBurst:    3,
		ChangeEvery:    10 * time.Second,
	}
}

// Validate reports every setting discovery cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.API != APIHeartbeat && c.API != APIReady {
		errs = append(errs, fmt.Errorf("discovery: unknown API %q (want %s or %s)", c.API, APIHeartbeat, APIReady))
	}
	if c.QueenURL != "" {
		if err := wire.ValidateQueenURL(c.QueenURL); err != nil {
			errs = append(errs, fmt.Errorf("discovery: %w", err))
		}
	}
	if c.Hive.ID == "" {
		errs = append(errs, errors.New("discovery: empty hive id"))
	}
	if c.Jitter < 0 || c.Jitter >= 1 {
		errs = append(errs, fmt.Errorf("discovery: jitter %v out of [0,1)", c.Jitter))
	}
	if c.Retry < 0 || c.RequestTimeout < 0 || c.ChangeEvery < 0 || c.ChangeBurst < 0 {
		errs = append(errs, errors.New("discovery: negative retry, timeout or rate"))
	}
	if allow, err := c.allowList(); err != nil {
		errs = append(errs, fmt.Errorf("discovery: %w", err))
	} else if c.QueenURL != "" && !allow.allows(c.QueenURL) {
		errs = append(errs, fmt.Errorf("discovery: queen URL %s is not in the allowed hosts %q", c.QueenURL, allow))
	}
	return errors.Join(errs...)
}

// allowList is QueenAllow parsed, or the host of QueenURL.
func (c Config) allowList() (allowList, error) {
	spec := c.QueenAllow
	if spec == "" {
		spec = hostOf(c.QueenURL)
	}
	return parseAllow(spec)
}
