package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"time"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/internal/settings"
	"github.com/rbee/hive/modules/collector"
	"github.com/rbee/hive/modules/discovery"
	"github.com/rbee/hive/modules/gateway"
	"github.com/rbee/hive/modules/jobs"
)

// config is every setting of the hive. Each module's settings bind
// straight into its Config (HTTP, Queen, NATS, Workers, Jobs), declared by
// the module (RegisterSettings); the fields here are the settings that
// belong to cmd/hive or that several modules share (settings.go).
type config struct {
	HiveID       string
	LogFormat    string
	LogLevel     string
	Port         int
	Listen       string
	APITokenFile string
	// APIReadTokenFile holds the read token (gateway.Config.ReadToken).
	APIReadTokenFile string
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
	// set is every setting, bound to this config; sources says where
	// each came from (a setting not in it is its default).
	set          *settings.Set
	sources      settings.Sources
	natsPassword string
}

// loadConfig resolves args, environment and the optional file into a
// config. Warnings (an old flat file) go to stderr.
func loadConfig(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (*config, error) {
	c := new(config)
	set := newSettings(c)
	given, err := set.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		usage(set, stderr)
		return nil, err
	}
	if err != nil {
		return nil, set.Explain(err)
	}
	for _, f := range given {
		if f.Name == "nats-hub" && settings.URLsCarryPassword(f.Value) {
			return nil, errors.New("--nats-hub carries the leafnode password, which ps shows to every user: set HIVE_NATS_HUB or nats.hub in the config file instead")
		}
	}
	file := c.ConfigFile
	if file == "" {
		file, _ = lookupEnv(settings.EnvName("config"))
	}
	sources, err := set.Load(file, lookupEnv, given, stderr)
	if err != nil {
		return nil, err
	}
	c.set, c.sources, c.ConfigFile = set, sources, file
	if err := c.loadSecrets(lookupEnv); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}
