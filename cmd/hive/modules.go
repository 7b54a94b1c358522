package main

import (
	"cmp"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/workerproc"
	"github.com/rbee/hive/modules/capabilities"
	"github.com/rbee/hive/modules/collector"
	"github.com/rbee/hive/modules/discovery"
	"github.com/rbee/hive/modules/gateway"
	"github.com/rbee/hive/modules/jobs"
)

// moduleConfigs are the modules' configurations. Each group's settings
// are bound into its module's Config already (settings.go); what is added
// here is what several modules share (the hive's id and info, the Queen
// URL, the worker pattern and cgroup tree) and what needs the hive's own
// settings (the listen address, the token). Runtime pieces (the GPU
// reader, the metrics registry, the file descriptor budget) are added by
// serve.
type moduleConfigs struct {
	bus          bus.Config
	collector    collector.Config
	gateway      gateway.Config
	discovery    discovery.Config
	capabilities capabilities.Config
	jobs         jobs.Config
}

func (c *config) modules(info wire.HiveInfo) moduleConfigs {
	m := moduleConfigs{bus: c.NATS, collector: c.Workers, gateway: c.HTTP, discovery: c.Queen,
		capabilities: capabilities.DefaultConfig(), jobs: c.Jobs}
	pattern, on := workerproc.ParseMatch(c.WorkerMatch)

	m.bus.Name, m.bus.HubHiveID = c.HiveID, c.HiveID
	m.bus.ObserverPassword = c.natsPassword

	m.collector.Hive = info
	m.collector.WorkerMatch, m.collector.WorkerMatchOn = pattern, on

	m.gateway.Listen = c.httpListen()
	m.gateway.HiveID = c.HiveID
	m.gateway.Token = c.apiToken
	m.gateway.ReadToken = c.apiReadToken
	if m.gateway.TLS.ClientCAFile == "" {
		m.gateway.TLS.ClientAuth = "" // request is the default only with a CA
	}
	m.gateway.Hosts = []string{info.Hostname}
	if h, err := os.Hostname(); err == nil {
		m.gateway.Hosts = append(m.gateway.Hosts, h)
	}

	m.discovery.Hive = info
	m.discovery.DefaultQueen = m.discovery.QueenURL == discovery.DefaultConfig().QueenURL
	if t := m.gateway.TLS; t.CertFile != "" {
		m.discovery.HiveTLS = true
		m.discovery.ClientCertFile, m.discovery.ClientKeyFile = t.CertFile, t.KeyFile
	}

	j := &m.jobs
	j.HiveID = c.HiveID
	j.QueenURL = c.Queen.QueenURL
	j.WorkerDir, j.LogDir, j.ModelDir = expandHome(j.WorkerDir), expandHome(j.LogDir), expandHome(j.ModelDir)
	if exe, err := os.Executable(); err == nil {
		j.LogCommand = []string{exe, "worker-log"} // workerlog.go
	}
	// One health path for the probes and the spawn's wait.
	j.HealthPath = cmp.Or(c.Workers.Readiness.Path, jobs.NoHealthPath)
	if j.StateDir != "-" {
		j.StateDir = expandHome(j.StateDir)
		// The GPUs' sticky Xids live beside the spawned workers' state,
		// in the directory the jobs module makes private and locks.
		state := cmp.Or(j.StateDir, filepath.Join(j.WorkerDir, ".hive-state"))
		m.collector.HealthState = filepath.Join(state, "gpu-health.json")
		// What the hub has not acknowledged yet lives there too.
		m.bus.Store.Dir = filepath.Join(state, "hub-outbox")
	}
	j.CgroupRoot = c.Workers.CgroupRoot
	j.WorkerMatch, j.WorkerMatchOn = pattern, on
	// Workers that ignore SIGTERM are killed within the budget, with time
	// left for the other stages.
	j.ShutdownGrace = c.ShutdownTimeout / 4
	return m
}

// validate runs every module's own Validate.
func (m moduleConfigs) validate() error {
	return errors.Join(m.collector.Validate(), m.gateway.Validate(), m.discovery.Validate(),
		m.capabilities.Validate(), m.jobs.Validate())
}

// splitList is a comma-separated setting's items, blanks dropped; never
// nil (for the gateway an empty list turns CORS off, nil means default).
func splitList(v string) []string {
	out := []string{}
	for _, o := range strings.Split(v, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
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

// scheme is how the HTTP listener is reached: https with a certificate.
func (c *config) scheme() string {
	if c.HTTP.TLS.CertFile != "" {
		return "https"
	}
	return "http"
}

// httpListen is the HTTP address: --listen, else all interfaces on --port.
func (c *config) httpListen() string {
	if c.Listen != "" {
		return c.Listen
	}
	return net.JoinHostPort("0.0.0.0", strconv.Itoa(c.Port))
}
