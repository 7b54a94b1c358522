package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/internal/workerproc"
	"github.com/rbee/hive/modules/collector"
	"github.com/rbee/hive/modules/discovery"
	"github.com/rbee/hive/modules/gateway"
	"github.com/rbee/hive/modules/jobs"
)

// group is one section of the settings: a YAML group of the config file
// and a heading of --help.
type group struct {
	name  string // key of the group in the YAML file; "" is its top level
	title string
	keys  []key
}

// key is one setting: a flag, a key in its YAML group, and the
// environment variable HIVE_<FLAG> (upper-cased, "-" as "_").
type key struct {
	flag string
	yaml string
	// fileOnly settings are tuning knobs read from the file and the
	// environment only, which keeps the command line short.
	fileOnly bool
}

// groups is the layout of every setting. The flags are defined in
// newFlagSet; TestEverySettingIsLaidOut keeps the two in step.
var groups = []group{
	{"", "Hive", []key{{"hive-id", "hive-id", false}, {"log-format", "log-format", false}, {"log-level", "log-level", false},
		{"ready-file", "ready-file", true}}},
	{"http", "HTTP and access", []key{{"port", "port", false}, {"listen", "listen", false}, {"api-token-file", "api-token-file", false},
		{"api-read-token-file", "api-read-token-file", true},
		{"access", "access", false}, {"cors-origins", "cors-origins", false}, {"pprof-listen", "pprof-listen", true}}},
	{"tls", "TLS (HTTPS, client certificates)", []key{{"tls-cert-file", "cert-file", false}, {"tls-key-file", "key-file", false},
		{"tls-client-ca-file", "client-ca-file", false}, {"tls-client-auth", "client-auth", false},
		{"tls-client-allowed-sans", "client-allowed-sans", false}, {"queen-ca-file", "queen-ca-file", false},
		{"nats-tls-cert-file", "nats-cert-file", false}, {"nats-tls-key-file", "nats-key-file", false},
		{"nats-tls-client-ca-file", "nats-client-ca-file", false}, {"nats-hub-ca-file", "nats-hub-ca-file", false},
		{"nats-hub-cert-file", "nats-hub-cert-file", false}, {"nats-hub-key-file", "nats-hub-key-file", false}}},
	{"queen", "Queen", []key{{"queen-url", "url", false}, {"queen-api", "api", false}, {"queen-allow", "allow", false},
		{"advertise-url", "advertise-url", false}, {"discovery-retry", "discovery-retry", true}}},
	{"nats", "NATS and hub", []key{{"nats-listen", "listen", false}, {"nats-user", "user", false},
		{"nats-password-file", "password-file", false}, {"nats-hub", "hub", false}}},
	{"workers", "Workers and GPUs", []key{{"telemetry-interval", "telemetry-interval", false}, {"worker-match", "match", false},
		{"cgroup-root", "cgroup-root", false}, {"gpu-source", "gpu-source", false}, {"nvml-lib", "nvml-lib", true},
		{"worker-health-path", "health-path", true}, {"worker-unresponsive-after", "unresponsive-after", true},
		{"engine-interval", "engine-interval", true}, {"engine-timeout", "engine-timeout", true}, {"engine-max-bytes", "engine-max-bytes", true},
		{"stall-after", "stall-after", true}, {"load-push-delta", "load-push-delta", true}}},
	{"jobs", "Jobs", []key{{"worker-dir", "worker-dir", false}, {"worker-log-dir", "log-dir", false}, {"model-dir", "model-dir", false},
		{"state-dir", "state-dir", false}, {"job-retention", "retention", false}, {"stop-workers-on-exit", "stop-workers-on-exit", false}}},
	{"limits", "Limits", []key{{"http-max-conns", "http-max-conns", false}, {"http-max-conns-per-ip", "http-max-conns-per-ip", false},
		{"http-body-timeout", "http-body-timeout", true}, {"nats-max-conns", "nats-max-conns", false}, {"max-jobs", "max-jobs", false},
		{"max-workers", "max-workers", false}, {"max-retained-jobs", "max-retained-jobs", true}, {"max-log-bytes", "max-log-bytes", true},
		{"min-free-vram-mb", "min-free-vram-mb", true},
		{"shutdown-timeout", "shutdown-timeout", false}}},
}

// commandFlags select what the binary does rather than configure the
// hive: they have no YAML key and `hive config` does not print them.
var commandFlags = map[string]bool{"config": true, "version": true}

// secretFlags are masked by `hive config`.
var secretFlags = map[string]bool{"nats-hub": true}

// lookupKey finds a setting by its flag name.
func lookupKey(flagName string) (group, key, bool) {
	for _, g := range groups {
		for _, k := range g.keys {
			if k.flag == flagName {
				return g, k, true
			}
		}
	}
	return group{}, key{}, false
}

// yamlPath is where a setting sits in the file: "queen.url".
func (g group) yamlPath(k key) string {
	if g.name == "" {
		return k.yaml
	}
	return g.name + "." + k.yaml
}

// newFlagSet binds every setting to c, with the modules' own defaults: a
// module's DefaultConfig is the one place a default lives.
func newFlagSet(c *config) *flag.FlagSet {
	*c = config{
		HTTP:    gateway.DefaultConfig(),
		Queen:   discovery.DefaultConfig(),
		NATS:    bus.Config{Observers: bus.DefaultObserverLimits},
		Workers: collector.DefaultConfig(),
		Jobs:    jobs.DefaultConfig(),
	}
	_, defPort, _ := net.SplitHostPort(c.HTTP.Listen)
	port, _ := strconv.Atoi(defPort)
	fs := flag.NewFlagSet("hive", flag.ContinueOnError)
	fs.StringVar(&c.HiveID, "hive-id", "localhost", "this hive's id (hive_id everywhere)")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.ReadyFile, "ready-file", "", `file the hive writes, once every module serves, with its bound HTTP and NATS addresses (JSON; for a --port 0 start); "" = none`)

	fs.IntVar(&c.Port, "port", port, "HTTP port on all interfaces; the short form of --listen 0.0.0.0:PORT")
	fs.StringVar(&c.Listen, "listen", "", "HTTP address HOST:PORT (default 0.0.0.0:<port>)")
	fs.StringVar(&c.APITokenFile, "api-token-file", "", "file holding the API bearer token (mode 0600 or stricter); or set HIVE_API_TOKEN")
	fs.StringVar(&c.APIReadTokenFile, "api-read-token-file", "", "file holding a second bearer token that reads (streams, capabilities, metrics) and controls nothing (mode 0600); or set HIVE_API_READ_TOKEN")
	fs.StringVar(&c.HTTP.Access, "access", c.HTTP.Access, "token: a token guards reads and control (without one, control from loopback only); open-reads: reads need no token; open: no token, control from anywhere (unsafe)")
	fs.StringVar(&c.CORSOrigins, "cors-origins", strings.Join(c.HTTP.CORSOrigins, ","), `origins whose pages may read the streams, capabilities and health (comma-separated; "*" any, "" none); never state-changing routes`)
	fs.StringVar(&c.HTTP.TLS.CertFile, "tls-cert-file", "", "PEM certificate (with its chain) to serve HTTPS on the listener; read again when it changes")
	fs.StringVar(&c.HTTP.TLS.KeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file (mode 0600 or stricter)")
	fs.StringVar(&c.HTTP.TLS.ClientCAFile, "tls-client-ca-file", "", "PEM CA that client certificates must verify against; a verified one authorises as the API token does")
	fs.StringVar(&c.HTTP.TLS.ClientAuth, "tls-client-auth", gateway.ClientAuthRequest, "with --tls-client-ca-file: none, request (verify when sent) or require")
	fs.StringVar(&c.TLSAllowedSANs, "tls-client-allowed-sans", "", "client certificate names allowed (comma-separated DNS names, IPs, URIs, e-mail addresses), each matched against names of its own type (a DNS name matches the common name only of a certificate without SANs); \"\" = any the CA signed")
	fs.StringVar(&c.Queen.QueenCAFile, "queen-ca-file", "", "PEM CA that an https:// Queen's certificate must verify against (default: the system's roots); the hive shows --tls-cert-file to a Queen that asks for a client certificate")
	fs.StringVar(&c.NATSTLS.cert, "nats-tls-cert-file", "", "PEM certificate: external NATS clients must use TLS (in-process modules need none); read again when it changes")
	fs.StringVar(&c.NATSTLS.key, "nats-tls-key-file", "", "its key (mode 0600 or stricter)")
	fs.StringVar(&c.NATSTLS.clientCA, "nats-tls-client-ca-file", "", "PEM CA: external NATS clients must show a certificate it verifies")
	fs.StringVar(&c.HubTLS.ca, "nats-hub-ca-file", "", "PEM CA the hub's leafnode certificate must verify against: the leafnode is TLS (default: plain unless the URL is tls://)")
	fs.StringVar(&c.HubTLS.cert, "nats-hub-cert-file", "", "client certificate for a hub that asks for one; read again when it changes")
	fs.StringVar(&c.HubTLS.key, "nats-hub-key-file", "", "its key (mode 0600 or stricter)")
	fs.StringVar(&c.PprofListen, "pprof-listen", "", `loopback HOST:PORT serving /debug/pprof/ (profiling; "" = off)`)

	fs.StringVar(&c.Queen.QueenURL, "queen-url", c.Queen.QueenURL, `Queen base URL; "" = standalone`)
	fs.StringVar(&c.Queen.API, "queen-api", c.Queen.API, "discovery protocol: heartbeat (POST /v1/hive-heartbeat) or ready (POST /v1/hive/ready)")
	fs.StringVar(&c.Queen.QueenAllow, "queen-allow", c.Queen.QueenAllow, "hosts, IPs or CIDRs discovery may send to, comma-separated (default: the host of --queen-url)")
	fs.Var(advertiseFlag{&c.Queen.AdvertiseURL, &c.Queen.AdvertiseHost}, "advertise-url", "URL the Queen reaches this hive at, or only its host (default: the outbound address toward the Queen)")
	fs.DurationVar(&c.Queen.Retry, "discovery-retry", c.Queen.Retry, "retry interval after the five discovery attempts (0 = give up like the original)")

	fs.StringVar(&c.NATS.Listen, "nats-listen", "127.0.0.1:4222", `NATS client listener for external subscribers; "" = in-process only`)
	fs.StringVar(&c.NATS.ObserverUser, "nats-user", "", "user external NATS clients must log in as (with --nats-password-file); default: no credentials, read-only")
	fs.StringVar(&c.NATSPasswordFile, "nats-password-file", "", "file holding the --nats-user password (mode 0600 or stricter)")
	fs.StringVar(&c.NATS.Hub, "nats-hub", "", "hub NATS leafnode URL (nats-leaf://[user:pass@]host:7422) to export hive.telemetry to; comma-separated for the nodes of a hub cluster")

	fs.DurationVar(&c.Workers.Interval, "telemetry-interval", c.Workers.Interval, "collector tick")
	fs.StringVar(&c.WorkerMatch, "worker-match", c.Workers.WorkerMatch, `regexp that marks a worker process by argv[0]'s base name; "cmdline:REGEXP" matches the whole command line; "" = off (only announced, cgroup and spawned workers)`)
	fs.StringVar(&c.Workers.CgroupRoot, "cgroup-root", c.Workers.CgroupRoot, `cgroup v2 tree of workers (<group>/<instance>); "" = off`)
	fs.StringVar(&c.GPUSource, "gpu-source", "auto", "GPU reader: auto (NVML where libnvidia-ml.so.1 loads, else nvidia-smi), nvml, smi (nvidia-smi; per-process utilisation from pmon where the driver has it), smi-device (the device mean: one nvidia-smi run less per tick), none, replay:<dir> (recorded nvidia-smi CSV)")
	fs.StringVar(&c.Workers.Readiness.Path, "worker-health-path", c.Workers.Readiness.Path, `path probed on every worker with a port, at http://127.0.0.1:<port><path>, for its state; "" = no probes`)
	fs.DurationVar(&c.Workers.Readiness.UnresponsiveAfter, "worker-unresponsive-after", c.Workers.Readiness.UnresponsiveAfter, "how long a worker that answered may fail its probes before it is unresponsive")
	e := &c.Workers.Engine
	fs.DurationVar(&e.Interval, "engine-interval", e.Interval, "how often each worker's engine metrics (http://127.0.0.1:<port>/metrics) are read for its load; 0 = never (min 100ms)")
	fs.DurationVar(&e.Timeout, "engine-timeout", e.Timeout, "deadline of one read of an engine's metrics")
	fs.Int64Var(&e.MaxBytes, "engine-max-bytes", e.MaxBytes, "an engine's metrics page is read up to this many bytes (the rest is cut and counted)")
	fs.DurationVar(&e.StallAfter, "stall-after", e.StallAfter, "a worker whose engine has requests running and makes no progress this long is stalled")
	fs.Var((*pushDelta)(&e.Push), "load-push-delta", `a change of a worker's queue or running requests by N requests or P % ("4,25%") is sent at once on hive.load and SSE ?events=load; "0" = never`)
	fs.StringVar(&c.NVMLLib, "nvml-lib", "", `the NVML library to load, e.g. /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1; "" = libnvidia-ml.so.1 from the loader's path`)

	fs.StringVar(&c.Jobs.WorkerDir, "worker-dir", c.Jobs.WorkerDir, "directory of worker binaries (llm-worker-rbee-<type>)")
	fs.StringVar(&c.Jobs.LogDir, "worker-log-dir", c.Jobs.LogDir, "directory of the spawned workers' log files")
	fs.StringVar(&c.Jobs.StateDir, "state-dir", c.Jobs.StateDir, "directory of the state file of spawned workers, taken back after a restart (default <worker-dir>/.hive-state; - for none)")
	fs.StringVar(&c.Jobs.ModelDir, "model-dir", c.Jobs.ModelDir, "model directory")
	fs.DurationVar(&c.Jobs.Retention, "job-retention", c.Jobs.Retention, "how long finished jobs stay streamable")
	fs.BoolVar(&c.Jobs.StopWorkersOnExit, "stop-workers-on-exit", c.Jobs.StopWorkersOnExit, "stop the workers this hive spawned when it exits")

	fs.IntVar(&c.HTTP.MaxConns, "http-max-conns", c.HTTP.MaxConns, "open HTTP connections at most; more get 503")
	fs.IntVar(&c.HTTP.MaxConnsPerIP, "http-max-conns-per-ip", c.HTTP.MaxConnsPerIP, "open HTTP connections per client address at most; more get 503")
	fs.DurationVar(&c.HTTP.BodyTimeout, "http-body-timeout", c.HTTP.BodyTimeout, "time a client has to send a request body; slower ones get 408")
	fs.IntVar(&c.NATS.Observers.MaxConns, "nats-max-conns", c.NATS.Observers.MaxConns, "external NATS connections at most")
	fs.IntVar(&c.Jobs.MaxJobs, "max-jobs", c.Jobs.MaxJobs, "jobs running at once; more get 503")
	fs.IntVar(&c.Jobs.MaxWorkers, "max-workers", c.Jobs.MaxWorkers, "live workers spawned by this hive; more spawns get 409")
	fs.IntVar(&c.Jobs.MaxRetained, "max-retained-jobs", c.Jobs.MaxRetained, "finished jobs kept streamable at most (also bounded to 64 MiB of narration)")
	fs.Uint64Var(&c.Jobs.MinFreeVRAMMB, "min-free-vram-mb", c.Jobs.MinFreeVRAMMB, "MiB a GPU worker's spawn must find free on the GPU it names, else 409; 0 = not checked")
	fs.Int64Var(&c.Jobs.MaxLogBytes, "max-log-bytes", c.Jobs.MaxLogBytes, "a spawned worker's log at most, in bytes, bounded as it is written: past it the log becomes <log>.1 and a new one starts")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 5*time.Second, "budget of a graceful shutdown; workers ignoring SIGTERM are killed within it")

	fs.StringVar(&c.ConfigFile, "config", "", "YAML file of the settings, in the groups below (configs/hive.yaml)")
	fs.BoolVar(&c.Version, "version", false, "print the version, commit and Go version, and exit")
	fs.Usage = func() { usage(fs, fs.Output()) }
	return fs
}

// advertiseFlag is --advertise-url: a whole URL, or a host alone, which
// discovery completes with the hive's scheme and port.
type advertiseFlag struct{ url, host *string }

func (a advertiseFlag) String() string {
	if a.url == nil || *a.url != "" {
		return deref(a.url)
	}
	return deref(a.host)
}

func (a advertiseFlag) Set(v string) error {
	*a.url, *a.host = "", ""
	if strings.Contains(v, "://") {
		*a.url = v
	} else {
		*a.host = v
	}
	return nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// workerMatch splits --worker-match into the pattern and what it applies
// to: "cmdline:RE" the whole command line, "exe:RE" or "RE" argv[0]'s
// base name.
func workerMatch(v string) (pattern, on string) {
	if p, ok := strings.CutPrefix(v, workerproc.OnCmdline+":"); ok {
		return p, workerproc.OnCmdline
	}
	if p, ok := strings.CutPrefix(v, workerproc.OnExe+":"); ok {
		return p, workerproc.OnExe
	}
	return v, workerproc.OnExe
}

// usage writes `hive --help`: the subcommands, then the flags by group,
// as nats-server --help does.
func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, `Usage: hive [flags]             run the hive
       hive config [flags]      print the effective configuration (secrets masked)
       hive healthcheck [--url] probe a running hive's /health (exit 0 if 200)
       hive watch [flags]       a live table of workers (hive watch --help)

Every flag is also HIVE_<FLAG> in the environment (HIVE_QUEEN_URL) and a key
of its group in the --config file (queen: {url: ...}).
Precedence: flag > environment > file > default.
`)
	line := func(name string) {
		f := fs.Lookup(name)
		def := ""
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
			def = " (default " + strconv.Quote(f.DefValue) + ")"
		}
		fmt.Fprintf(w, "  --%s\n        %s%s\n", name, f.Usage, def)
	}
	var fileOnly []string
	for _, g := range groups {
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, k := range g.keys {
			if k.fileOnly {
				fileOnly = append(fileOnly, g.yamlPath(k)+" (HIVE_"+envSuffix(k.flag)+"): "+fs.Lookup(k.flag).Usage)
				continue
			}
			line(k.flag)
		}
	}
	fmt.Fprintln(w, "\nOther:")
	line("config")
	line("version")
	fmt.Fprintln(w, "\nIn the file or the environment only:")
	for _, s := range fileOnly {
		fmt.Fprintf(w, "  %s\n", s)
	}
}
