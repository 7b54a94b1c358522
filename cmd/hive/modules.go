package main

import (
	"errors"
	"strings"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/modules/capabilities"
	"github.com/rbee/hive/modules/collector"
	"github.com/rbee/hive/modules/discovery"
	"github.com/rbee/hive/modules/gateway"
	"github.com/rbee/hive/modules/jobs"
)

// moduleConfigs are the modules' configurations built from the settings:
// each starts from the module's DefaultConfig, so a setting the hive does
// not expose keeps the module's default. Runtime pieces (the GPU reader,
// file descriptor budget) are added by serve.
type moduleConfigs struct {
	bus          bus.Config
	collector    collector.Config
	gateway      gateway.Config
	discovery    discovery.Config
	capabilities capabilities.Config
	jobs         jobs.Config
}

func (c *config) modules(info wire.HiveInfo) moduleConfigs {
	m := moduleConfigs{
		bus: bus.Config{
			Name: c.HiveID, Listen: c.NATSListen, Hub: c.NATSHub, HubHiveID: c.HiveID,
			Observers:    bus.ObserverLimits{MaxConns: c.NATSMaxConns},
			ObserverUser: c.NATSUser, ObserverPassword: c.natsPassword,
		},
		collector:    collector.DefaultConfig(),
		gateway:      gateway.DefaultConfig(),
		discovery:    discovery.DefaultConfig(),
		capabilities: capabilities.DefaultConfig(),
		jobs:         jobs.DefaultConfig(),
	}

	col := &m.collector
	col.Hive = info
	col.Interval = c.TelemetryInterval
	col.WorkerMatch, col.WorkerMatchOn = c.WorkerMatch, c.WorkerMatchOn
	col.CgroupRoot = c.CgroupRoot

	gw := &m.gateway
	gw.Listen = c.httpListen()
	gw.HiveID = c.HiveID
	gw.Token = c.apiToken
	gw.AuthRead = c.AuthRead
	gw.AllowUnauthenticated = c.AllowUnauthenticated
	gw.MaxConns, gw.MaxConnsPerIP = c.HTTPMaxConns, c.HTTPMaxConnsPerIP
	gw.BodyTimeout = c.HTTPBodyTimeout
	gw.CORSOrigins = []string{}
	for _, o := range strings.Split(c.CORSOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			gw.CORSOrigins = append(gw.CORSOrigins, o)
		}
	}

	d := &m.discovery
	d.QueenURL = c.QueenURL
	d.API = c.QueenAPI
	d.Hive = info
	d.AdvertiseURL, d.AdvertiseHost = c.AdvertiseURL, c.AdvertiseHost
	d.Retry = c.DiscoveryRetry
	d.QueenAllow = c.QueenAllow

	j := &m.jobs
	j.HiveID = c.HiveID
	j.QueenURL = c.QueenURL
	j.WorkerDir = expandHome(c.WorkerDir)
	j.LogDir = expandHome(c.WorkerLogDir)
	j.ModelDir = expandHome(c.ModelDir)
	j.CgroupRoot = c.CgroupRoot
	j.WorkerMatch, j.WorkerMatchOn = c.WorkerMatch, c.WorkerMatchOn
	j.MaxJobs, j.MaxWorkers = c.MaxJobs, c.MaxWorkers
	j.Retention, j.MaxRetained = c.JobRetention, c.MaxRetainedJobs
	j.StopWorkersOnExit = c.StopWorkersOnExit
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
