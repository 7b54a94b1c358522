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
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/nvsmi"
	"github.com/rbee/hive/modules/collector"
	"github.com/rbee/hive/modules/discovery"
	"github.com/rbee/hive/modules/gateway"
	"github.com/rbee/hive/modules/jobs"
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
	CORSOrigins          string
	PprofListen          string
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
	GPUUtil              string
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
	Version              bool
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
var commandFlags = map[string]bool{"print-config": true, "health-check": true, "health-check-url": true, "config": true, "version": true}

// secretFlags are masked by --print-config.
var secretFlags = map[string]bool{"nats-hub": true}

func newFlagSet(c *config) *flag.FlagSet {
	// Defaults are the modules' own: a module's DefaultConfig is the one
	// place a default lives.
	var (
		gw   = gateway.DefaultConfig()
		col  = collector.DefaultConfig()
		disc = discovery.DefaultConfig()
		job  = jobs.DefaultConfig()
		obs  = bus.DefaultObserverLimits
	)
	_, defPort, _ := net.SplitHostPort(gw.Listen)
	port, _ := strconv.Atoi(defPort)
	fs := flag.NewFlagSet("hive", flag.ContinueOnError)
	fs.IntVar(&c.Port, "port", port, "HTTP port on all interfaces; the short form of --listen 0.0.0.0:PORT")
	fs.StringVar(&c.Listen, "listen", "", "HTTP address HOST:PORT (default 0.0.0.0:<port>)")
	fs.StringVar(&c.APITokenFile, "api-token-file", "", "file holding the API bearer token (mode 0600 or stricter); or set HIVE_API_TOKEN")
	fs.BoolVar(&c.AuthRead, "auth-read", gw.AuthRead, "with a token, reads (streams, capabilities) need it too; false leaves them open")
	fs.BoolVar(&c.AllowUnauthenticated, "allow-unauthenticated", gw.AllowUnauthenticated, "without a token, accept state-changing requests from anywhere (the original's behaviour; unsafe)")
	fs.IntVar(&c.HTTPMaxConns, "http-max-conns", gw.MaxConns, "open HTTP connections at most; more get 503")
	fs.IntVar(&c.HTTPMaxConnsPerIP, "http-max-conns-per-ip", gw.MaxConnsPerIP, "open HTTP connections per client address at most; more get 503")
	fs.DurationVar(&c.HTTPBodyTimeout, "http-body-timeout", gw.BodyTimeout, "time a client has to send a request body; slower ones get 408")
	fs.StringVar(&c.CORSOrigins, "cors-origins", strings.Join(gw.CORSOrigins, ","), `origins whose pages may read the streams, capabilities and health (comma-separated; "*" any, "" none); never state-changing routes`)
	fs.StringVar(&c.PprofListen, "pprof-listen", "", `loopback HOST:PORT serving /debug/pprof/ (profiling; "" = off)`)
	fs.StringVar(&c.QueenAllow, "queen-allow", disc.QueenAllow, "hosts, IPs or CIDRs discovery may send to, comma-separated (default: the host of --queen-url)")
	fs.StringVar(&c.HiveID, "hive-id", "localhost", "this hive's id (hive_id everywhere)")
	fs.StringVar(&c.QueenURL, "queen-url", disc.QueenURL, `Queen base URL; "" = standalone`)
	fs.StringVar(&c.QueenAPI, "queen-api", disc.API, "discovery protocol: heartbeat (POST /v1/hive-heartbeat) or ready (POST /v1/hive/ready)")
	fs.StringVar(&c.AdvertiseURL, "advertise-url", "", "URL the Queen reaches this hive at (default: derived from the outbound address)")
	fs.StringVar(&c.AdvertiseHost, "advertise-host", "", "host part of the advertised URL (default: the outbound address toward the Queen)")
	fs.DurationVar(&c.DiscoveryRetry, "discovery-retry", disc.Retry, "retry interval after the five discovery attempts (0 = give up like the original)")
	fs.StringVar(&c.NATSListen, "nats-listen", "127.0.0.1:4222", `NATS client listener for external subscribers; "" = in-process only`)
	fs.StringVar(&c.NATSUser, "nats-user", "", "user external NATS clients must log in as (with --nats-password-file); default: no credentials, read-only")
	fs.StringVar(&c.NATSPasswordFile, "nats-password-file", "", "file holding the --nats-user password (mode 0600 or stricter)")
	fs.IntVar(&c.NATSMaxConns, "nats-max-conns", obs.MaxConns, "external NATS connections at most")
	fs.StringVar(&c.NATSHub, "nats-hub", "", "hub NATS leafnode URL (nats-leaf://[user:pass@]host:7422) to export hive.telemetry to; comma-separated for the nodes of a hub cluster")
	fs.DurationVar(&c.TelemetryInterval, "telemetry-interval", col.Interval, "collector tick")
	fs.StringVar(&c.WorkerMatch, "worker-match", col.WorkerMatch, `regexp that marks a worker process; "" = off (only announced, cgroup and spawned workers)`)
	fs.StringVar(&c.WorkerMatchOn, "worker-match-on", col.WorkerMatchOn, "what --worker-match applies to: exe (argv[0] base name) or cmdline (whole command line)")
	fs.StringVar(&c.CgroupRoot, "cgroup-root", col.CgroupRoot, `cgroup v2 tree of workers (<group>/<instance>); "" = off`)
	fs.StringVar(&c.GPUSource, "gpu-source", "auto", "GPU reader: auto|smi (nvidia-smi), none, replay:<dir> (recorded nvidia-smi CSV)")
	fs.StringVar(&c.GPUUtil, "gpu-util", "process", "gpu_util_pct: process (the worker's own share, from nvidia-smi pmon; device mean where the driver has none) or device (the mean utilisation of its GPUs; one nvidia-smi run less per tick)")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.WorkerDir, "worker-dir", job.WorkerDir, "directory of worker binaries (llm-worker-rbee-<type>)")
	fs.StringVar(&c.WorkerLogDir, "worker-log-dir", job.LogDir, "directory of the spawned workers' log files")
	fs.StringVar(&c.ModelDir, "model-dir", job.ModelDir, "model directory")
	fs.IntVar(&c.MaxJobs, "max-jobs", job.MaxJobs, "jobs running at once; more get 503")
	fs.IntVar(&c.MaxWorkers, "max-workers", job.MaxWorkers, "live workers spawned by this hive; more spawns get 409")
	fs.IntVar(&c.MaxRetainedJobs, "max-retained-jobs", job.MaxRetained, "finished jobs kept streamable at most (also bounded to 64 MiB of narration)")
	fs.DurationVar(&c.JobRetention, "job-retention", job.Retention, "how long finished jobs stay streamable")
	fs.BoolVar(&c.StopWorkersOnExit, "stop-workers-on-exit", job.StopWorkersOnExit, "stop the workers this hive spawned when it exits")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 5*time.Second, "budget of a graceful shutdown; workers ignoring SIGTERM are killed within it")
	fs.StringVar(&c.ConfigFile, "config", "", "YAML file of flag-name: value settings")
	fs.BoolVar(&c.Version, "version", false, "print the version, commit and Go version, and exit")
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
	if err := c.loadSecrets(lookupEnv); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// httpListen is the HTTP address: --listen, else all interfaces on --port.
func (c *config) httpListen() string {
	if c.Listen != "" {
		return c.Listen
	}
	return net.JoinHostPort("0.0.0.0", strconv.Itoa(c.Port))
}

// validate checks the settings that belong to cmd/hive, then every
// module's configuration as serve would build it, with the module's own
// Validate.
func (c *config) validate() error {
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d out of range", c.Port))
	}
	if strings.TrimSpace(c.HiveID) == "" {
		errs = append(errs, errors.New("--hive-id must not be empty"))
	} else if _, err := wire.TelemetrySubjectFor(c.HiveID); err != nil && c.NATSHub != "" {
		errs = append(errs, fmt.Errorf("--hive-id with --nats-hub names the hub subject hive.telemetry.<hive id>: %w", err))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	if c.NATSMaxConns < 1 {
		errs = append(errs, fmt.Errorf("--nats-max-conns %d must be at least 1", c.NATSMaxConns))
	}
	for _, hub := range strings.Split(c.NATSHub, ",") {
		if u, err := url.Parse(strings.TrimSpace(hub)); hub != "" && err == nil && u.User != nil {
			if pw, _ := u.User.Password(); pw == "change-me" {
				errs = append(errs, errors.New("--nats-hub: the leafnode password is the old shipped default; generate one (make compose-up writes deployments/.env)"))
			}
		}
	}
	if c.PprofListen != "" && !loopbackAddr(c.PprofListen) {
		errs = append(errs, fmt.Errorf("--pprof-listen %s: loopback addresses only", c.PprofListen))
	}
	if c.ShutdownTimeout < time.Second {
		errs = append(errs, fmt.Errorf("--shutdown-timeout %v too short (min 1s)", c.ShutdownTimeout))
	}
	if _, err := nvsmi.New(c.GPUSource); err != nil {
		errs = append(errs, fmt.Errorf("--gpu-source: %w", err))
	}
	if c.GPUUtil != "process" && c.GPUUtil != "device" {
		errs = append(errs, fmt.Errorf("--gpu-util %q: want process or device", c.GPUUtil))
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
