package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/internal/settings"
	"github.com/rbee/hive/internal/workerproc"
	"github.com/rbee/hive/modules/collector"
	"github.com/rbee/hive/modules/discovery"
	"github.com/rbee/hive/modules/gateway"
	"github.com/rbee/hive/modules/jobs"
)

// newSettings binds every setting to c: the groups in their order, the
// settings of cmd/hive itself, and each module's own declarations
// (RegisterSettings), with the modules' defaults: a module's
// DefaultConfig is the one place its defaults live.
func newSettings(c *config) *settings.Set {
	*c = config{HTTP: gateway.DefaultConfig(), Queen: discovery.DefaultConfig(), NATS: bus.DefaultConfig(),
		Workers: collector.DefaultConfig(), Jobs: jobs.DefaultConfig(), HiveID: "localhost", LogFormat: "text",
		LogLevel: "info", GPUSource: "auto", WorkerMatch: collector.DefaultConfig().WorkerMatch, ShutdownTimeout: 5 * time.Second}
	_, defPort, _ := net.SplitHostPort(c.HTTP.Listen)
	c.Port, _ = strconv.Atoi(defPort)
	c.HTTP.TLS.ClientAuth = gateway.ClientAuthRequest // used only with a client CA (modules.go)
	s := settings.New("hive")
	for _, g := range [][2]string{{"", "Hive"}, {"http", "HTTP and access"}, {"tls", "TLS (HTTPS, client certificates)"}, {"queen", "Queen"},
		{"nats", "NATS and hub"}, {"workers", "Workers and GPUs"}, {"jobs", "Jobs"}, {"limits", "Limits"}} {
		s.Declare(g[0], g[1])
	}
	top := s.Group("")
	top.String(&c.HiveID, "hive-id", "hive-id", "this hive's id (hive_id everywhere)")
	top.String(&c.LogFormat, "log-format", "log-format", "log format: text or json")
	top.String(&c.LogLevel, "log-level", "log-level", "log level: debug, info, warn, error", settings.Reloadable)
	top.String(&c.ReadyFile, "ready-file", "ready-file", `file the hive writes, once every module serves, with its bound HTTP and NATS addresses (JSON; for a --port 0 start); "" = none`, settings.FileOnly)
	http := s.Group("http")
	http.Int(&c.Port, "port", "port", "HTTP port on all interfaces; the short form of --listen 0.0.0.0:PORT")
	http.String(&c.Listen, "listen", "listen", "HTTP address HOST:PORT (default 0.0.0.0:<port>)")
	http.String(&c.APITokenFile, "api-token-file", "api-token-file", "file holding the API bearer token (mode 0600 or stricter); or set HIVE_API_TOKEN", settings.Reloadable)
	http.String(&c.APIReadTokenFile, "api-read-token-file", "api-read-token-file", "file holding a second bearer token that reads (streams, capabilities, metrics) and controls nothing (mode 0600); or set HIVE_API_READ_TOKEN",
		settings.FileOnly, settings.Reloadable)
	c.HTTP.RegisterSettings(s)
	http.String(&c.PprofListen, "pprof-listen", "pprof-listen", `loopback HOST:PORT serving /debug/pprof/ (profiling; "" = off)`, settings.FileOnly)
	c.registerNATSTLS(s.Group("tls"))
	c.Queen.RegisterSettings(s)
	c.NATS.RegisterSettings(s)
	s.Group("nats").String(&c.NATSPasswordFile, "nats-password-file", "password-file", "file holding the --nats-user password (mode 0600 or stricter)")
	c.Workers.RegisterSettings(s)
	c.registerWorkers(s.Group("workers"))
	c.Jobs.RegisterSettings(s)
	s.Group("limits").Duration(&c.ShutdownTimeout, "shutdown-timeout", "shutdown-timeout", "budget of a graceful shutdown; workers ignoring SIGTERM are killed within it")
	registerFormers(s)
	s.Command("config", func(fs *flag.FlagSet) {
		fs.StringVar(&c.ConfigFile, "config", "", "YAML file of the settings, in the groups below (configs/hive.yaml)")
	})
	s.Command("version", func(fs *flag.FlagSet) {
		fs.BoolVar(&c.Version, "version", false, "print the version, commit and Go version, and exit")
	})
	return s
}

// registerNATSTLS declares the NATS listener's and the hub leafnode's
// TLS files: set once, in the file or the environment, with the HTTPS
// listener's on the command line beside them (as exporter-toolkit keeps
// TLS out of the flags).
func (c *config) registerNATSTLS(tls *settings.Group) {
	tls.String(&c.NATSTLS.cert, "nats-tls-cert-file", "nats-cert-file", "PEM certificate: external NATS clients must use TLS (in-process modules need none); read again when it changes", settings.FileOnly)
	tls.String(&c.NATSTLS.key, "nats-tls-key-file", "nats-key-file", "its key (mode 0600 or stricter)", settings.FileOnly)
	tls.String(&c.NATSTLS.clientCA, "nats-tls-client-ca-file", "nats-client-ca-file", "PEM CA: external NATS clients must show a certificate it verifies", settings.FileOnly)
	tls.String(&c.HubTLS.ca, "nats-hub-ca-file", "nats-hub-ca-file", "PEM CA the hub's leafnode certificate must verify against: the leafnode is TLS (default: plain unless the URL is tls://)", settings.FileOnly)
	tls.String(&c.HubTLS.cert, "nats-hub-cert-file", "nats-hub-cert-file", "client certificate for a hub that asks for one; read again when it changes", settings.FileOnly)
	tls.String(&c.HubTLS.key, "nats-hub-key-file", "nats-hub-key-file", "its key (mode 0600 or stricter)", settings.FileOnly)
}

// registerWorkers declares what the collector and jobs share (which
// processes are workers) and the GPU reader serve builds for both.
func (c *config) registerWorkers(w *settings.Group) {
	w.String(&c.WorkerMatch, "worker-match", "match", `regexp that marks a worker process by argv[0]'s base name; "cmdline:REGEXP" matches the whole command line; "" = off (only announced, cgroup and spawned workers)`,
		settings.Reloadable)
	w.String(&c.GPUSource, "gpu-source", "gpu-source", "GPU reader: auto (NVML where libnvidia-ml.so.1 loads, else nvidia-smi), nvml, smi (nvidia-smi; per-process utilisation from pmon where the driver has it), smi-device (the device mean: one nvidia-smi run less per tick), none, replay:<dir> (recorded nvidia-smi CSV)")
	w.String(&c.NVMLLib, "nvml-lib", "nvml-lib", `the NVML library to load, e.g. /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1; "" = libnvidia-ml.so.1 from the loader's path`, settings.FileOnly)
}

// usage writes `hive --help`: the subcommands, then the settings by
// group, as nats-server --help does.
func usage(s *settings.Set, w io.Writer) {
	fmt.Fprint(w, `Usage: hive [flags]             run the hive
       hive config [flags]      print the effective configuration (secrets masked)
       hive healthcheck [--url] probe a running hive's /health (exit 0 if 200)
       hive watch [flags]       a live table of workers (hive watch --help)

Every flag is also HIVE_<FLAG> in the environment (HIVE_QUEEN_URL) and a key
of its group in the --config file (queen: {url: ...}).
Precedence: flag > environment > file > default.
`)
	s.Usage(w)
}

// registerFormers declares cmd/hive's old settings, folded into others,
// as an old flat file may still name them (the modules declare theirs).
func registerFormers(s *settings.Set) {
	s.Former("gpu-util", func(s *settings.Set, v string) (string, error) {
		if src, _ := s.Lookup("gpu-source"); v == "device" && (src.Value() == "auto" || src.Value() == "smi") {
			return "workers.gpu-source: smi-device", s.Set("gpu-source", "smi-device")
		}
		return "workers.gpu-source: smi-device", nil
	})
	s.Former("worker-match-on", func(s *settings.Set, v string) (string, error) {
		m, _ := s.Lookup("worker-match")
		pattern, _ := workerproc.ParseMatch(m.Value())
		if v != "exe" && v != "cmdline" {
			return "", fmt.Errorf("want exe or cmdline, not %q", v)
		}
		if pattern != "" {
			return "workers.match: " + v + ":REGEXP", s.Set("worker-match", v+":"+pattern)
		}
		return "workers.match: " + v + ":REGEXP", nil
	})
}

// print writes the effective configuration as YAML in the file's groups,
// secrets masked, each setting with where it came from.
func (c *config) print(w io.Writer) { c.set.Print(w, c.sources) }
