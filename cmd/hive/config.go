package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/nvsmi"
	"github.com/rbee/hive/modules/collector"
	"github.com/rbee/hive/modules/discovery"
	"github.com/rbee/hive/modules/gateway"
	"github.com/rbee/hive/modules/jobs"
)

// config is every setting of the hive. The flags of a group bind straight
// into that group's module configuration (HTTP, Queen, NATS, Workers,
// Jobs); the fields here are the settings that belong to cmd/hive or that
// several modules share. settings.go lays them out in groups.
type config struct {
	HiveID       string
	LogFormat    string
	LogLevel     string
	Port         int
	Listen       string
	APITokenFile string
	// APIReadTokenFile holds the read token (gateway.Config.ReadToken).
	APIReadTokenFile string
	CORSOrigins      string
	TLSAllowedSANs   string
	// args are the command line the config came from, read again on
	// SIGHUP; logLevel is the level a reload may change.
	args     []string
	logLevel *slog.LevelVar
	// NATSTLS is the edge listener's TLS, HubTLS the leafnode's.
	NATSTLS          struct{ cert, key, clientCA string }
	HubTLS           struct{ ca, cert, key string }
	PprofListen      string
	NATSPasswordFile string
	WorkerMatch      string // [exe:|cmdline:]REGEXP, for the collector and jobs
	GPUSource        string
	NVMLLib          string // libnvidia-ml.so.1 to load; "" is the loader's
	ShutdownTimeout  time.Duration
	ReadyFile        string // written once the hive serves (serve.go)
	ConfigFile       string
	Version          bool

	HTTP    gateway.Config   // http: (and the HTTP limits)
	Queen   discovery.Config // queen:
	NATS    bus.Config       // nats: (and nats-max-conns)
	Workers collector.Config // workers:
	Jobs    jobs.Config      // jobs: (and the job limits)

	// Secrets read at load time, never printed: the API token
	// (HIVE_API_TOKEN or --api-token-file) and the observer password.
	apiToken     string
	apiReadToken string
	// sources says where each setting came from (flag name: "file ...",
	// "environment ...", "command line ..."); a setting not in it is its
	// default.
	sources      map[string]string
	natsPassword string
}

// loadConfig resolves args, environment and the optional file into a
// config. Warnings (an old flat file) go to stderr.
func loadConfig(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (*config, error) {
	// First pass: which flags were given, and where the file is.
	var probe config
	pfs := newFlagSet(&probe)
	pfs.SetOutput(io.Discard)
	if err := pfs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(pfs, stderr)
			return nil, err
		}
		return nil, flagError(pfs, err)
	}
	if pfs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", pfs.Args())
	}
	var given []*flag.Flag
	var errs []error
	pfs.Visit(func(f *flag.Flag) {
		given = append(given, f)
		if g, k, ok := lookupKey(f.Name); ok && k.fileOnly {
			errs = append(errs, fmt.Errorf("--%s is set in the file (%s) or the environment (HIVE_%s), not on the command line", f.Name, g.yamlPath(k), envSuffix(f.Name)))
		}
		if f.Name == "nats-hub" && urlsCarryPassword(f.Value.String()) {
			errs = append(errs, errors.New("--nats-hub carries the leafnode password, which ps shows to every user: set HIVE_NATS_HUB or nats.hub in the config file instead"))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	var c config
	fs := newFlagSet(&c)
	fs.SetOutput(io.Discard)
	file := probe.ConfigFile
	if file == "" {
		file, _ = lookupEnv(envName("config"))
	}
	// Where each setting came from, for `hive config`: the file, then the
	// environment, then the command line, each over the one before.
	sources := map[string]string{}
	if file != "" {
		if err := applyConfigFile(fs, file, stderr); err != nil {
			return nil, err
		}
		fs.Visit(func(f *flag.Flag) { sources[f.Name] = "file " + file })
	}
	fs.VisitAll(func(f *flag.Flag) {
		// A set-but-empty variable counts: HIVE_QUEEN_URL="" selects
		// standalone mode as --queen-url "" does.
		if v, ok := lookupEnv(envName(f.Name)); ok && !commandFlags[f.Name] {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w (want %s)", envName(f.Name), v, err, wantOf(f)))
			}
			sources[f.Name] = "environment " + envName(f.Name)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, f := range given {
		if err := fs.Set(f.Name, f.Value.String()); err != nil {
			return nil, err
		}
		sources[f.Name] = "command line --" + f.Name
	}
	c.sources = sources
	c.ConfigFile = file
	if err := c.loadSecrets(lookupEnv); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// wantOf says what a flag takes, for an error about a bad value.
// flagErrRe takes apart the flag package's parse errors.
var (
	badValueRe = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for flag -([A-Za-z0-9-]+): `)
	unknownRe  = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
)

// flagError says in one line what was wrong with the command line and
// what is wanted, where the flag package says "parse error" and prints
// every setting.
func flagError(fs *flag.FlagSet, err error) error {
	if m := badValueRe.FindStringSubmatch(err.Error()); m != nil {
		if f := fs.Lookup(m[2]); f != nil {
			return fmt.Errorf("--%s %q: want %s (hive --help lists every setting)", f.Name, m[1], wantOf(f))
		}
	}
	if m := unknownRe.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("unknown flag --%s (hive --help lists every setting)", m[1])
	}
	return fmt.Errorf("%w (hive --help lists every setting)", err)
}

func wantOf(f *flag.Flag) string {
	switch f.Value.(type) {
	case interface{ IsBoolFlag() bool }:
		return "true or false"
	}
	switch fmt.Sprintf("%T", f.Value) {
	case "*flag.intValue", "*flag.uintValue", "*flag.int64Value", "*flag.uint64Value":
		return "a whole number"
	case "*flag.durationValue":
		return "a duration with its unit, such as 500ms, 10s or 1m"
	case "*flag.float64Value":
		return "a number"
	}
	return "a value as for --" + f.Name
}

// scheme is how the HTTP listener is reached: https with a certificate.
func (c *config) scheme() string {
	if c.HTTP.TLS.CertFile != "" {
		return "https"
	}
	return "http"
}

// urlsCarryPassword reports whether any of the comma-separated URLs has a
// password in its user info.
func urlsCarryPassword(list string) bool {
	for _, u := range strings.Split(list, ",") {
		if pu, err := url.Parse(strings.TrimSpace(u)); err == nil && pu.User != nil {
			if _, ok := pu.User.Password(); ok {
				return true
			}
		}
	}
	return false
}

// httpListen is the HTTP address: --listen, else all interfaces on --port.
func (c *config) httpListen() string {
	if c.Listen != "" {
		return c.Listen
	}
	return net.JoinHostPort("0.0.0.0", strconv.Itoa(c.Port))
}

// smiSource is the nvidia-smi reader --gpu-source names (auto and nvml
// fall back to nvidia-smi), and whether it reads the device mean alone.
func (c *config) smiSource() (nvsmi.Runner, bool, error) {
	spec, deviceOnly := c.GPUSource, false
	switch spec {
	case "smi-device":
		spec, deviceOnly = "smi", true
	case "nvml":
		spec = "smi"
	}
	r, err := nvsmi.New(spec)
	if err != nil {
		return nil, false, fmt.Errorf("%w (or nvml, smi-device)", err)
	}
	return r, deviceOnly, nil
}

// validateFirst checks the hive id, the ports and the Queen's URL.
func (c *config) validateFirst() error {
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d out of range: want 0-65535", c.Port))
	}
	switch {
	case strings.TrimSpace(c.HiveID) == "":
		errs = append(errs, errors.New("--hive-id must not be empty"))
	case strings.IndexFunc(c.HiveID, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		errs = append(errs, fmt.Errorf("--hive-id %q: no spaces or control characters (it names the hive's NATS server); use letters, digits, '-', '_' and dots", c.HiveID))
	case c.NATS.Hub != "" && !hiveIDRe.MatchString(c.HiveID):
		errs = append(errs, fmt.Errorf("--hive-id %q with --nats-hub: use letters, digits, '-', '_' and single dots, at most 128 (it names the hive's subject at the hub, hive.telemetry.<hive id>)", c.HiveID))
	}
	if c.Listen != "" {
		if _, err := strconv.Atoi(c.Listen); err == nil {
			errs = append(errs, fmt.Errorf("--listen %q: want HOST:PORT, e.g. 0.0.0.0:%s (or --port %s)", c.Listen, c.Listen, c.Listen))
		} else if _, p, err := net.SplitHostPort(c.Listen); err != nil || p == "" {
			errs = append(errs, fmt.Errorf("--listen %q: want HOST:PORT, e.g. 0.0.0.0:7835 or 127.0.0.1:7835", c.Listen))
		}
	}
	if q := c.Queen.QueenURL; q != "" && wire.ValidateQueenURL(q) != nil {
		hint := "want http:// or https://, a host and a port, e.g. http://queen:7833"
		if !strings.Contains(q, "://") {
			hint = "want a URL with its scheme, e.g. http://" + q
		}
		errs = append(errs, fmt.Errorf("--queen-url %q: %s (\"\" runs standalone)", q, hint))
	}
	return errors.Join(errs...)
}

// hiveIDRe is what a hive id may be: NATS tokens of letters, digits, '-'
// and '_', separated by single dots (wire.TelemetrySubjectFor).
var hiveIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}(\.[A-Za-z0-9_-]+)*$`)

// validate checks the settings that belong to cmd/hive, then every
// module's configuration as serve would build it, with the module's own
// Validate.
// privateKeyFile refuses a TLS key that group or others may read.
func privateKeyFile(flag, path string) error {
	if path == "" {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("--%s: %w", flag, err)
	}
	if err := ownerOnly(path, st); err != nil {
		return fmt.Errorf("--%s %w", flag, err)
	}
	return nil
}

func (c *config) validate() error {
	// What a newcomer types first is checked first, each with what it
	// wants: a module's own check of the same value would only add a
	// second, vaguer line.
	if err := c.validateFirst(); err != nil {
		return err
	}
	var errs []error
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	for flag, path := range map[string]string{"tls-key-file": c.HTTP.TLS.KeyFile, "nats-tls-key-file": c.NATSTLS.key, "nats-hub-key-file": c.HubTLS.key} {
		if err := privateKeyFile(flag, path); err != nil {
			errs = append(errs, err)
		}
	}
	if (c.NATSTLS.cert == "") != (c.NATSTLS.key == "") || (c.NATSTLS.clientCA != "" && c.NATSTLS.cert == "") {
		errs = append(errs, errors.New("--nats-tls-cert-file and --nats-tls-key-file go together, and a client CA needs them"))
	}
	if (c.HubTLS.cert == "") != (c.HubTLS.key == "") {
		errs = append(errs, errors.New("--nats-hub-cert-file and --nats-hub-key-file go together"))
	}
	if c.NATS.Observers.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("--nats-max-conns %d must be at least 1", c.NATS.Observers.MaxConns))
	}
	for _, hub := range strings.Split(c.NATS.Hub, ",") {
		if u, err := url.Parse(strings.TrimSpace(hub)); hub != "" && err == nil && u.User != nil {
			if pw, _ := u.User.Password(); pw == "change-me" {
				errs = append(errs, errors.New("--nats-hub: the leafnode password is the old shipped default; generate one (make compose-env writes deployments/.env)"))
			}
		}
	}
	if c.PprofListen != "" && !loopbackAddr(c.PprofListen) {
		errs = append(errs, fmt.Errorf("--pprof-listen %s: loopback addresses only", c.PprofListen))
	}
	if c.ShutdownTimeout < time.Second {
		errs = append(errs, fmt.Errorf("--shutdown-timeout %v too short (min 1s)", c.ShutdownTimeout))
	}
	if _, _, err := c.smiSource(); err != nil {
		errs = append(errs, fmt.Errorf("--gpu-source: %w", err))
	}
	errs = append(errs, c.modules(wire.HiveInfo{ID: c.HiveID}).validate())
	return errors.Join(errs...)
}

// expandHome replaces a leading "~/" with the user's home directory.
func expandHome(p string) string {
	rest, ok := strings.CutPrefix(p, "~/")
	if !ok {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return home + "/" + rest
}

// envName maps a flag name to its environment variable.
func envName(flagName string) string { return "HIVE_" + envSuffix(flagName) }

func envSuffix(flagName string) string {
	return strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
