// Command hive is the per-machine daemon of an LLM-inference cluster: it
// samples the worker processes, streams their telemetry over SSE and NATS,
// answers the Queen's discovery handshake and runs worker jobs.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/internal/nvsmi"
	"github.com/rbee/hive/modules/capabilities"
	"github.com/rbee/hive/modules/collector"
	"github.com/rbee/hive/modules/discovery"
	"github.com/rbee/hive/modules/gateway"
	"github.com/rbee/hive/modules/jobs"
)

// version is reported in hive_info.version; set with -ldflags -X.
var version = "0.1.0"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(args, os.LookupEnv, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "hive:", err)
		return 2
	}
	if cfg.PrintConfig {
		cfg.print(stdout)
		return 0
	}
	if cfg.HealthCheck {
		return healthCheck(cfg, stderr)
	}
	log := newLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("hive stopped with error", "err", err)
		return 1
	}
	log.Info("hive stopped")
	return 0
}

// serve starts the bus, then the modules; on ctx's end it stops the
// modules in order and the bus last.
func serve(ctx context.Context, cfg *config, log *slog.Logger) error {
	b, err := bus.Start(bus.Config{
		Name: cfg.HiveID, Listen: cfg.NATSListen, Hub: cfg.NATSHub,
		Observers:    bus.ObserverLimits{MaxConns: cfg.NATSMaxConns},
		ObserverUser: cfg.NATSUser, ObserverPassword: cfg.natsPassword,
	}, log)
	if err != nil {
		return err
	}
	defer b.Close()
	warnExposure(cfg, log)
	if cfg.NATSHub != "" {
		log.Info("exporting hive.telemetry to the hub", "hub", maskURL(cfg.NATSHub))
	}

	host := discovery.AdvertiseHost(cfg.QueenURL, cfg.AdvertiseURL, cfg.AdvertiseHost)
	info := bus.HiveInfo{
		ID:       cfg.HiveID,
		Hostname: host,
		Port:     uint16(cfg.Port),
		Version:  version,
	}
	// One nvidia-smi (or replay) for both modules that read GPUs.
	gpu, err := nvsmi.New(cfg.GPUSource)
	if err != nil {
		return fmt.Errorf("--gpu-source: %w", err)
	}
	coll, err := collector.New(collector.Config{
		Hive:          info,
		Interval:      cfg.TelemetryInterval,
		WorkerMatch:   cfg.WorkerMatch,
		WorkerMatchOn: cfg.WorkerMatchOn,
		CgroupRoot:    cfg.CgroupRoot,
		GPU:           collector.NewGPUSource(gpu),
	}, b, log)
	if err != nil {
		return err
	}
	gwCfg := gateway.DefaultConfig()
	gwCfg.Listen = cfg.httpListen()
	gwCfg.HiveID = cfg.HiveID
	gwCfg.Token = cfg.apiToken
	gwCfg.AuthRead = cfg.AuthRead
	gwCfg.AllowUnauthenticated = cfg.AllowUnauthenticated
	gwCfg.MaxConns, gwCfg.MaxConnsPerIP = connBudget(cfg, log)
	gwCfg.BodyTimeout = cfg.HTTPBodyTimeout
	gw, err := gateway.New(gwCfg, b, log)
	if err != nil {
		return err
	}
	caps, err := capabilities.New(capabilities.Config{Detector: capabilities.SMI{Runner: gpu}}, b, log)
	if err != nil {
		return err
	}
	disc, err := discovery.New(discovery.Config{
		QueenURL:      cfg.QueenURL,
		API:           cfg.QueenAPI,
		Hive:          info,
		AdvertiseURL:  cfg.AdvertiseURL,
		AdvertiseHost: cfg.AdvertiseHost,
		Jitter:        0.1,
		Retry:         cfg.DiscoveryRetry,
		QueenAllow:    cfg.QueenAllow,
	}, b, log)
	if err != nil {
		return err
	}
	jobsMod, err := jobs.New(jobs.Config{
		HiveID:            cfg.HiveID,
		QueenURL:          cfg.QueenURL,
		WorkerDir:         expandHome(cfg.WorkerDir),
		LogDir:            expandHome(cfg.WorkerLogDir),
		ModelDir:          expandHome(cfg.ModelDir),
		CgroupRoot:        cfg.CgroupRoot,
		WorkerMatch:       cfg.WorkerMatch,
		WorkerMatchOn:     cfg.WorkerMatchOn,
		MaxJobs:           cfg.MaxJobs,
		MaxWorkers:        cfg.MaxWorkers,
		Retention:         cfg.JobRetention,
		MaxRetained:       cfg.MaxRetainedJobs,
		StopWorkersOnExit: cfg.StopWorkersOnExit,
		// Workers that ignore SIGTERM are killed within the budget, with
		// time left for the other stages.
		ShutdownGrace: cfg.ShutdownTimeout / 4,
		CheckPause:    50 * time.Millisecond,
	}, b, log)
	if err != nil {
		return err
	}
	ctx, err = onShutdownRequest(ctx, b, log)
	if err != nil {
		return err
	}
	log.Info("hive starting", "hive_id", cfg.HiveID, "listen", gwCfg.Listen, "advertise_host", host, "version", version)
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
	return runStages(ctx, log, cfg.ShutdownTimeout,
		[]named{{"collector", coll}},
		[]named{{"gateway", gw}},
		[]named{{"discovery", disc}},
		[]named{{"capabilities", caps}, {"jobs", jobsMod}},
	)
}

// healthCheck probes a running hive, for container healthchecks in images
// that have no curl.
func healthCheck(cfg *config, stderr io.Writer) int {
	u := cfg.HealthCheckURL
	if u == "" {
		_, port, _ := net.SplitHostPort(cfg.httpListen())
		u = "http://127.0.0.1:" + port + "/health"
	}
	c := &http.Client{
		Timeout:       3 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Get(u)
	if err != nil {
		fmt.Fprintln(stderr, "unhealthy:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "unhealthy: status", resp.StatusCode)
		return 1
	}
	return 0
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
