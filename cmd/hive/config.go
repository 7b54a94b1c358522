package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/internal/workerproc"
)

// config is every setting of the hive. Each field is a flag; the same name
// is the key in the YAML file and, upper-cased with "-" as "_" and prefixed
// HIVE_, the environment variable. Precedence: flag > environment > file >
// default.
type config struct {
	Port                 int
	Listen               string
	APITokenFile         string
	AuthRead             bool
	AllowUnauthenticated bool
	HTTPMaxConns         int
	HTTPMaxConnsPerIP    int
	HTTPBodyTimeout      time.Duration
	QueenAllow           string
	NATSUser             string
	NATSPasswordFile     string
	NATSMaxConns         int
	WorkerMatchOn        string
	MaxWorkers           int
	MaxRetainedJobs      int
	ShutdownTimeout      time.Duration
	HiveID               string
	QueenURL             string
	QueenAPI             string
	AdvertiseURL         string
	AdvertiseHost        string
	DiscoveryRetry       time.Duration
	NATSListen           string
	NATSHub              string
	TelemetryInterval    time.Duration
	WorkerMatch          string
	CgroupRoot           string
	GPUSource            string
	LogFormat            string
	LogLevel             string
	WorkerDir            string
	WorkerLogDir         string
	ModelDir             string
	MaxJobs              int
	JobRetention         time.Duration
	StopWorkersOnExit    bool
	ConfigFile           string
	PrintConfig          bool
	HealthCheck          bool
	HealthCheckURL       string

	// Secrets read at load time, never printed: the API token
	// (HIVE_API_TOKEN or --api-token-file) and the observer password.
	apiToken     string
	natsPassword string
}

// commandFlags select what the binary does rather than configure the hive;
// --print-config does not print them and the example file need not list
// them.
var commandFlags = map[string]bool{"print-config": true, "health-check": true, "health-check-url": true, "config": true}

// secretFlags are masked by --print-config.
var secretFlags = map[string]bool{"nats-hub": true}

func newFlagSet(c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("hive", flag.ContinueOnError)
	fs.IntVar(&c.Port, "port", 7835, "HTTP port on all interfaces; the short form of --listen 0.0.0.0:PORT")
	fs.StringVar(&c.Listen, "listen", "", "HTTP address HOST:PORT (default 0.0.0.0:<port>)")
	fs.StringVar(&c.APITokenFile, "api-token-file", "", "file holding the API bearer token (mode 0600 or stricter); or set HIVE_API_TOKEN")
	fs.BoolVar(&c.AuthRead, "auth-read", true, "with a token, reads (streams, capabilities) need it too; false leaves them open")
	fs.BoolVar(&c.AllowUnauthenticated, "allow-unauthenticated", false, "without a token, accept state-changing requests from anywhere (the original's behaviour; unsafe)")
	fs.IntVar(&c.HTTPMaxConns, "http-max-conns", 1024, "open HTTP connections at most; more get 503")
	fs.IntVar(&c.HTTPMaxConnsPerIP, "http-max-conns-per-ip", 128, "open HTTP connections per client address at most; more get 503")
	fs.DurationVar(&c.HTTPBodyTimeout, "http-body-timeout", 10*time.Second, "time a client has to send a request body; slower ones get 408")
	fs.StringVar(&c.QueenAllow, "queen-allow", "", "hosts, IPs or CIDRs discovery may send to, comma-separated (default: the host of --queen-url)")
	fs.StringVar(&c.HiveID, "hive-id", "localhost", "this hive's id (hive_id everywhere)")
	fs.StringVar(&c.QueenURL, "queen-url", "http://localhost:7833", `Queen base URL; "" = standalone`)
	fs.StringVar(&c.QueenAPI, "queen-api", "heartbeat", "discovery protocol: heartbeat (POST /v1/hive-heartbeat) or ready (POST /v1/hive/ready)")
	fs.StringVar(&c.AdvertiseURL, "advertise-url", "", "URL the Queen reaches this hive at (default: derived from the outbound address)")
	fs.StringVar(&c.AdvertiseHost, "advertise-host", "", "host part of the advertised URL (default: the outbound address toward the Queen)")
	fs.DurationVar(&c.DiscoveryRetry, "discovery-retry", 60*time.Second, "retry interval after the five discovery attempts (0 = give up like the original)")
	fs.StringVar(&c.NATSListen, "nats-listen", "127.0.0.1:4222", `NATS client listener for external subscribers; "" = in-process only`)
	fs.StringVar(&c.NATSUser, "nats-user", "", "user external NATS clients must log in as (with --nats-password-file); default: no credentials, read-only")
	fs.StringVar(&c.NATSPasswordFile, "nats-password-file", "", "file holding the --nats-user password (mode 0600 or stricter)")
	fs.IntVar(&c.NATSMaxConns, "nats-max-conns", 64, "external NATS connections at most")
	fs.StringVar(&c.NATSHub, "nats-hub", "", "hub NATS leafnode URL (nats-leaf://[user:pass@]host:7422) to export hive.telemetry to")
	fs.DurationVar(&c.TelemetryInterval, "telemetry-interval", time.Second, "collector tick")
	fs.StringVar(&c.WorkerMatch, "worker-match", workerproc.DefaultPattern, `regexp that marks a worker process; "" = off (only announced, cgroup and spawned workers)`)
	fs.StringVar(&c.WorkerMatchOn, "worker-match-on", workerproc.OnExe, "what --worker-match applies to: exe (argv[0] base name) or cmdline (whole command line)")
	fs.StringVar(&c.CgroupRoot, "cgroup-root", "/sys/fs/cgroup/rbee.slice", `cgroup v2 tree of workers (<group>/<instance>); "" = off`)
	fs.StringVar(&c.GPUSource, "gpu-source", "auto", "GPU reader: auto|smi (nvidia-smi), none, replay:<dir> (recorded nvidia-smi CSV)")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.WorkerDir, "worker-dir", "~/.cache/rbee/workers", "directory of worker binaries (llm-worker-rbee-<type>)")
	fs.StringVar(&c.WorkerLogDir, "worker-log-dir", "~/.cache/rbee/logs", "directory of the spawned workers' log files")
	fs.StringVar(&c.ModelDir, "model-dir", "~/.cache/rbee/models", "model directory")
	fs.IntVar(&c.MaxJobs, "max-jobs", 64, "jobs running at once; more get 503")
	fs.IntVar(&c.MaxWorkers, "max-workers", 32, "live workers spawned by this hive; more spawns get 409")
	fs.IntVar(&c.MaxRetainedJobs, "max-retained-jobs", 1000, "finished jobs kept streamable at most (also bounded to 64 MiB of narration)")
	fs.DurationVar(&c.JobRetention, "job-retention", 10*time.Minute, "how long finished jobs stay streamable")
	fs.BoolVar(&c.StopWorkersOnExit, "stop-workers-on-exit", false, "stop the workers this hive spawned when it exits")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 5*time.Second, "budget of a graceful shutdown; workers ignoring SIGTERM are killed within it")
	fs.StringVar(&c.ConfigFile, "config", "", "YAML file of flag-name: value settings")
	fs.BoolVar(&c.PrintConfig, "print-config", false, "print the effective configuration (secrets masked) and exit")
	fs.BoolVar(&c.HealthCheck, "health-check", false, "probe a running hive's /health (for container healthchecks): exit 0 if it answers 200")
	fs.StringVar(&c.HealthCheckURL, "health-check-url", "", "URL --health-check probes (default http://127.0.0.1:<port>/health)")
	return fs
}

// loadConfig resolves args, environment and the optional file into a config.
func loadConfig(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (*config, error) {
	// First pass: which flags were given, and where the file is.
	var probe config
	pfs := newFlagSet(&probe)
	pfs.SetOutput(stderr)
	if err := pfs.Parse(args); err != nil {
		return nil, err
	}
	if pfs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", pfs.Args())
	}
	given := map[string]string{}
	pfs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })

	var c config
	fs := newFlagSet(&c)
	fs.SetOutput(io.Discard)
	file := probe.ConfigFile
	if file == "" {
		file, _ = lookupEnv(envName("config"))
	}
	if file != "" {
		vals, err := readConfigFile(file)
		if err != nil {
			return nil, err
		}
		for k, v := range vals {
			if fs.Lookup(k) == nil {
				return nil, fmt.Errorf("config file %s: unknown setting %q", file, k)
			}
			if err := fs.Set(k, v); err != nil {
				return nil, fmt.Errorf("config file %s: %s: %w", file, k, err)
			}
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		// A set-but-empty variable counts: HIVE_QUEEN_URL="" selects
		// standalone mode as --queen-url "" does.
		if v, ok := lookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for k, v := range given {
		if err := fs.Set(k, v); err != nil {
			return nil, err
		}
	}
	c.ConfigFile = file
	if err := c.validate(); err != nil {
		return nil, err
	}
	if err := c.loadSecrets(lookupEnv); err != nil {
		return nil, err
	}
	return &c, nil
}

// loadSecrets reads the API token and the NATS observer password. A
// secret file readable by group or others is refused: the token controls
// processes on this machine.
func (c *config) loadSecrets(lookupEnv func(string) (string, bool)) error {
	env, hasEnv := lookupEnv("HIVE_API_TOKEN")
	switch {
	case hasEnv && c.APITokenFile != "":
		return errors.New("both HIVE_API_TOKEN and --api-token-file are set; use one")
	case hasEnv:
		c.apiToken = strings.TrimSpace(env)
		if c.apiToken == "" {
			return errors.New("HIVE_API_TOKEN is set but empty")
		}
	case c.APITokenFile != "":
		tok, err := readSecretFile(c.APITokenFile)
		if err != nil {
			return fmt.Errorf("--api-token-file: %w", err)
		}
		c.apiToken = tok
	}
	if c.apiToken != "" && len(c.apiToken) < 16 {
		return errors.New("API token shorter than 16 characters; use a random one (openssl rand -hex 32)")
	}
	if (c.NATSUser == "") != (c.NATSPasswordFile == "") {
		return errors.New("--nats-user and --nats-password-file go together")
	}
	if c.NATSPasswordFile != "" {
		pw, err := readSecretFile(c.NATSPasswordFile)
		if err != nil {
			return fmt.Errorf("--nats-password-file: %w", err)
		}
		c.natsPassword = pw
	}
	return nil
}

// readSecretFile returns a file's trimmed content if only its owner may
// read it.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s has mode %04o: group and others must have no access (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// httpListen is the HTTP address: --listen, else all interfaces on --port.
func (c *config) httpListen() string {
	if c.Listen != "" {
		return c.Listen
	}
	return net.JoinHostPort("0.0.0.0", strconv.Itoa(c.Port))
}

func (c *config) validate() error {
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d out of range", c.Port))
	}
	if strings.TrimSpace(c.HiveID) == "" {
		errs = append(errs, errors.New("--hive-id must not be empty"))
	}
	if c.TelemetryInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("--telemetry-interval %v too short (min 10ms)", c.TelemetryInterval))
	}
	if c.QueenURL != "" {
		if err := bus.ValidateQueenURL(c.QueenURL); err != nil {
			errs = append(errs, fmt.Errorf("--queen-url: %w", err))
		}
	}
	if c.QueenAPI != "heartbeat" && c.QueenAPI != "ready" {
		errs = append(errs, fmt.Errorf("--queen-api %q: want heartbeat or ready", c.QueenAPI))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	if c.MaxJobs < 1 {
		errs = append(errs, fmt.Errorf("--max-jobs %d must be at least 1", c.MaxJobs))
	}
	for name, v := range map[string]int{"--max-workers": c.MaxWorkers, "--max-retained-jobs": c.MaxRetainedJobs,
		"--http-max-conns": c.HTTPMaxConns, "--http-max-conns-per-ip": c.HTTPMaxConnsPerIP, "--nats-max-conns": c.NATSMaxConns} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s %d must be at least 1", name, v))
		}
	}
	if c.Listen != "" {
		if _, p, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("--listen %q: %w", c.Listen, err))
		} else if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
			errs = append(errs, fmt.Errorf("--listen %q: bad port", c.Listen))
		}
	}
	if _, err := workerproc.NewMatcher(c.WorkerMatch, c.WorkerMatchOn); err != nil {
		errs = append(errs, fmt.Errorf("--worker-match: %w", err))
	}
	if u, err := url.Parse(c.NATSHub); c.NATSHub != "" && err == nil && u.User != nil {
		if pw, _ := u.User.Password(); pw == "change-me" {
			errs = append(errs, errors.New("--nats-hub: the leafnode password is the old shipped default; generate one (make compose-up writes deployments/.env)"))
		}
	}
	if c.HTTPBodyTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--http-body-timeout %v too short (min 100ms)", c.HTTPBodyTimeout))
	}
	if c.ShutdownTimeout < time.Second {
		errs = append(errs, fmt.Errorf("--shutdown-timeout %v too short (min 1s)", c.ShutdownTimeout))
	}
	if c.DiscoveryRetry < 0 || c.JobRetention < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
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
func envName(flagName string) string {
	return "HIVE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func readConfigFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case nil:
			out[k] = ""
		case map[string]any, []any:
			return nil, fmt.Errorf("config file %s: %s: want a scalar", path, k)
		default:
			out[k] = fmt.Sprint(v)
		}
	}
	return out, nil
}

// print writes the effective configuration as YAML, secrets masked.
func (c *config) print(w io.Writer) {
	// Binding flags to c writes their defaults into it; restore the values
	// so the flag set reads c's current settings.
	saved := *c
	cur := newFlagSet(c)
	*c = saved
	var names []string
	cur.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	for _, n := range names {
		if commandFlags[n] && n != "config" {
			continue
		}
		v := cur.Lookup(n).Value.String()
		if secretFlags[n] {
			v = maskURL(v)
		}
		fmt.Fprintf(w, "%s: %q\n", n, v)
	}
}
