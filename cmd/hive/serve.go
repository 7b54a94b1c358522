package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/gpu"
	"github.com/rbee/hive/internal/metric"
	"github.com/rbee/hive/internal/nvml"
	"github.com/rbee/hive/internal/settings"
	"github.com/rbee/hive/modules/capabilities"
	"github.com/rbee/hive/modules/collector"
	"github.com/rbee/hive/modules/discovery"
	"github.com/rbee/hive/modules/gateway"
	"github.com/rbee/hive/modules/jobs"
)

// serve starts the bus, then the modules; on ctx's end it stops the
// modules in order and the bus last.
func serve(ctx context.Context, cfg *config, log *slog.Logger) error {
	host := discovery.AdvertiseHost(cfg.Queen.QueenURL, cfg.Queen.AdvertiseURL, cfg.Queen.AdvertiseHost)
	mc := cfg.modules(wire.HiveInfo{ID: cfg.HiveID, Hostname: host, Port: uint16(cfg.Port), Version: version})
	var err error
	if mc.bus.TLS, mc.bus.HubTLS, err = natsTLS(cfg, log); err != nil {
		return err
	}
	b, err := bus.Start(mc.bus, log)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := servePprof(ctx, cfg.PprofListen, log); err != nil {
		return err
	}
	if cfg.NATS.Hub != "" {
		log.Info("exporting hive.telemetry to the hub", "hub", settings.MaskURLPasswords(cfg.NATS.Hub))
	}
	warnExposure(cfg, log)
	stages, lv, err := buildModules(cfg, mc, b, log)
	if err != nil {
		return err
	}
	ctx, err = onShutdownRequest(ctx, b, log)
	if err != nil {
		return err
	}
	sd := newNotifier(os.LookupEnv, log)
	defer sd.close()
	if err := sd.watch(ctx, b, cfg.HiveID); err != nil {
		return err
	}
	stopNotify := context.AfterFunc(ctx, func() { sd.send("STOPPING=1") })
	defer stopNotify()
	gw := lv.gateway
	reloadOnHUP(ctx, cfg, lv, log)
	if cfg.Queen.QueenURL == "" {
		log.Info("hive starting", "hive_id", cfg.HiveID, "version", version)
	} else {
		log.Info("hive starting", "hive_id", cfg.HiveID, "advertise_host", host, "version", version)
	}
	ready := func() {
		sd.send("READY=1")
		base := baseURL(cfg.scheme(), gw.Addr())
		log.Info("hive serving: open the dashboard at "+base+"/", "stream", base+"/v1/heartbeats/stream", "metrics", base+"/metrics", "listen", gw.ListenAddr())
		if cfg.ReadyFile == "" {
			return
		}
		if err := writeReadyFile(cfg.ReadyFile, cfg.scheme(), gw.Addr(), b.ClientURL()); err != nil {
			log.Warn("ready file", "path", cfg.ReadyFile, "err", err)
		}
	}
	if cfg.ReadyFile != "" {
		// A file left from an earlier run must not say this one serves.
		_ = os.Remove(cfg.ReadyFile)
		defer os.Remove(cfg.ReadyFile)
	}
	return runStages(ctx, log, cfg.ShutdownTimeout, ready, stages...)
}

// buildModules makes every module with its runtime pieces (the GPU
// reader, the metrics registry) and returns them in stop order, and the
// ones a reload changes (the gateway also knows the bound HTTP address).
func buildModules(cfg *config, mc moduleConfigs, b *bus.Bus, log *slog.Logger) ([][]named, *live, error) {
	mc.gateway.MaxConns, mc.gateway.MaxConnsPerIP = connBudget(cfg, log)

	reg, hiveReg, err := newRegistry(cfg.HiveID, version, commit())
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: %w", err)
	}
	if err := b.RegisterMetrics(hiveReg); err != nil {
		return nil, nil, fmt.Errorf("bus metrics: %w", err)
	}
	mc.gateway.Metrics = reg
	if err := openGPU(cfg, &mc, hiveReg, log); err != nil {
		return nil, nil, err
	}

	mc.collector.Checks = append(mc.collector.Checks, b.HubStoreHealth)
	coll, err := collector.New(mc.collector, b, log, hiveReg)
	if err != nil {
		return nil, nil, err
	}
	gw, err := gateway.New(mc.gateway, b, log, hiveReg)
	if err != nil {
		return nil, nil, err
	}
	caps, err := capabilities.New(mc.capabilities, b, log)
	if err != nil {
		return nil, nil, err
	}
	disc, err := discovery.New(mc.discovery, b, log, hiveReg)
	if err != nil {
		return nil, nil, err
	}
	jobsMod, err := jobs.New(mc.jobs, b, log, hiveReg)
	if err != nil {
		return nil, nil, err
	}
	// Stages stop in this order and start in the reverse one, each
	// waiting until the later stage's modules are ready:
	//   - capabilities and jobs answer before anything asks them: the
	//     first discovery attempt carries capabilities (no "no responders"
	//     race), the gateway fronts both;
	//   - discovery and the gateway are subscribed before the collector's
	//     first tick, so it reaches the SSE history and the Queen.
	// The collector stops first so that its last event, marked "stopping",
	// still reaches the streams and, with the gateway's stop in between,
	// discovery's push to a legacy Queen.
	return [][]named{
		{{"collector", coll}},
		{{"gateway", gw}},
		{{"discovery", disc}},
		{{"capabilities", caps}, {"jobs", jobsMod}},
	}, &live{gateway: gw, collector: coll, discovery: disc, jobs: jobsMod}, nil
}

// baseURL is where this machine reaches the HTTP listener: loopback when
// it listens on every address.
func baseURL(scheme string, addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return scheme + "://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// readyFile is what the hive writes to its ready file once every module
// serves: where to reach it. Tests and supervisors start it on port 0 and
// read the bound addresses here, rather than from a log line.
type readyFile struct {
	PID  int    `json:"pid"`
	HTTP string `json:"http"`           // base URL, e.g. http://127.0.0.1:7835
	NATS string `json:"nats,omitempty"` // the edge server's client URL, if it listens
}

// writeReadyFile writes the ready file whole (a reader never sees half of
// it).
func writeReadyFile(path, scheme string, httpAddr net.Addr, natsURL string) error {
	b, err := json.Marshal(readyFile{PID: os.Getpid(), HTTP: baseURL(scheme, httpAddr), NATS: natsURL})
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// openGPU gives the collector and capabilities one GPU reader
// (internal/gpu): one NVML handle set, or one nvidia-smi path.
func openGPU(cfg *config, mc *moduleConfigs, reg prometheus.Registerer, log *slog.Logger) error {
	src, err := gpu.Open(cfg.GPUSource, cfg.NVMLLib, log)
	if err != nil {
		return err
	}
	mc.collector.GPU, mc.capabilities.Detector = src, src
	if n, ok := src.(gpu.NVML); ok {
		if r, ok := n.Reader.(*nvml.Reader); ok {
			return metric.Register(reg, metric.Counter("hive_gpu_xids_dropped_total",
				"XID errors dropped because more than 256 arrived between two ticks.", r.XIDsDropped))
		}
	}
	return nil
}
