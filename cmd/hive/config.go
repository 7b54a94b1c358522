package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rbee/hive/bus"
)

// config is every setting of the hive. Each field is a flag; the same name
// is the key in the YAML file and, upper-cased with "-" as "_" and prefixed
// HIVE_, the environment variable. Precedence: flag > environment > file >
// default.
type config struct {
	Port              int
	HiveID            string
	QueenURL          string
	QueenAPI          string
	AdvertiseURL      string
	AdvertiseHost     string
	DiscoveryRetry    time.Duration
	NATSListen        string
	NATSHub           string
	TelemetryInterval time.Duration
	WorkerMatch       string
	CgroupRoot        string
	GPUSource         string
	LogFormat         string
	LogLevel          string
	WorkerDir         string
	WorkerLogDir      string
	ModelDir          string
	MaxJobs           int
	JobRetention      time.Duration
	StopWorkersOnExit bool
	ConfigFile        string
	PrintConfig       bool
	HealthCheck       bool
	HealthCheckURL    string
}

// commandFlags select what the binary does rather than configure the hive;
// --print-config does not print them and the example file need not list
// them.
var commandFlags = map[string]bool{"print-config": true, "health-check": true, "health-check-url": true, "config": true}

// secretFlags are masked by --print-config.
var secretFlags = map[string]bool{"nats-hub": true}

func newFlagSet(c *config) *flag.FlagSet {
	fs := flag.NewFlagSet("hive", flag.ContinueOnError)
	fs.IntVar(&c.Port, "port", 7835, "HTTP port (binds 0.0.0.0)")
	fs.StringVar(&c.HiveID, "hive-id", "localhost", "this hive's id (hive_id everywhere)")
	fs.StringVar(&c.QueenURL, "queen-url", "http://localhost:7833", `Queen base URL; "" = standalone`)
	fs.StringVar(&c.QueenAPI, "queen-api", "heartbeat", "discovery protocol: heartbeat (POST /v1/hive-heartbeat) or ready (POST /v1/hive/ready)")
	fs.StringVar(&c.AdvertiseURL, "advertise-url", "", "URL the Queen reaches this hive at (default: derived from the outbound address)")
	fs.StringVar(&c.AdvertiseHost, "advertise-host", "", "host part of the advertised URL (default: the outbound address toward the Queen)")
	fs.DurationVar(&c.DiscoveryRetry, "discovery-retry", 60*time.Second, "retry interval after the five discovery attempts (0 = give up like the original)")
	fs.StringVar(&c.NATSListen, "nats-listen", "127.0.0.1:4222", `NATS client listener for external subscribers; "" = in-process only`)
	fs.StringVar(&c.NATSHub, "nats-hub", "", "hub NATS leafnode URL (nats-leaf://[user:pass@]host:7422) to export hive.telemetry to")
	fs.DurationVar(&c.TelemetryInterval, "telemetry-interval", time.Second, "collector tick")
	fs.StringVar(&c.WorkerMatch, "worker-match", "llm-worker|worker-rbee", `regexp on command lines that marks a worker process; "" = off`)
	fs.StringVar(&c.CgroupRoot, "cgroup-root", "/sys/fs/cgroup/rbee.slice", `cgroup v2 tree of workers (<group>/<instance>); "" = off`)
	fs.StringVar(&c.GPUSource, "gpu-source", "auto", "GPU reader: auto|smi (nvidia-smi), none, replay:<dir> (recorded nvidia-smi CSV)")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.WorkerDir, "worker-dir", "~/.cache/rbee/workers", "directory of worker binaries (llm-worker-rbee-<type>)")
	fs.StringVar(&c.WorkerLogDir, "worker-log-dir", "~/.cache/rbee/logs", "directory of the spawned workers' log files")
	fs.StringVar(&c.ModelDir, "model-dir", "~/.cache/rbee/models", "model directory")
	fs.IntVar(&c.MaxJobs, "max-jobs", 64, "jobs running at once; more get 503")
	fs.DurationVar(&c.JobRetention, "job-retention", 10*time.Minute, "how long finished jobs stay streamable")
	fs.BoolVar(&c.StopWorkersOnExit, "stop-workers-on-exit", false, "stop the workers this hive spawned when it exits")
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
	return &c, c.validate()
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
