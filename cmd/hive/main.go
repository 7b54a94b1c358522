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
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/nvsmi"
	"github.com/rbee/hive/modules/capabilities"
	"github.com/rbee/hive/modules/collector"
	"github.com/rbee/hive/modules/discovery"
	"github.com/rbee/hive/modules/gateway"
	"github.com/rbee/hive/modules/jobs"
)

// version is reported in hive_info.version; set with -ldflags -X.
var version = "0.1.0"

// buildCommit is set by the Makefile with -ldflags -X.
var buildCommit string

// commit is the VCS revision the binary was built from, or "unknown".
func commit() string {
	if buildCommit != "" {
		return buildCommit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "watch" {
		return watch(args[1:], stdout, stderr)
	}
	cfg, err := loadConfig(args, os.LookupEnv, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "hive:", err)
		return 2
	}
	if cfg.Version {
		fmt.Fprintf(stdout, "hive %s (commit %s, %s)\n", version, commit(), runtime.Version())
		return 0
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
	host := discovery.AdvertiseHost(cfg.QueenURL, cfg.AdvertiseURL, cfg.AdvertiseHost)
	mc := cfg.modules(wire.HiveInfo{ID: cfg.HiveID, Hostname: host, Port: uint16(cfg.Port), Version: version})
	b, err := bus.Start(mc.bus, log)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := servePprof(ctx, cfg.PprofListen, log); err != nil {
		return err
	}
	if cfg.NATSHub != "" {
		log.Info("exporting hive.telemetry to the hub", "hub", maskURL(cfg.NATSHub))
	}
	warnExposure(cfg, log)

	// One nvidia-smi (or replay) for both modules that read GPUs.
	gpu, err := nvsmi.New(cfg.GPUSource)
	if err != nil {
		return fmt.Errorf("--gpu-source: %w", err)
	}
	mc.collector.GPU = collector.NewGPUSource(gpu)
	if smi, ok := mc.collector.GPU.(*collector.SMI); ok {
		smi.DeviceUtil = cfg.GPUUtil == "device"
	}
	mc.capabilities.Detector = capabilities.SMI{Runner: gpu}
	mc.gateway.MaxConns, mc.gateway.MaxConnsPerIP = connBudget(cfg, log)

	reg, hiveReg, err := newRegistry(cfg.HiveID, version, commit())
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := b.RegisterMetrics(hiveReg); err != nil {
		return fmt.Errorf("bus metrics: %w", err)
	}
	mc.gateway.Metrics = reg

	coll, err := collector.New(mc.collector, b, log, hiveReg)
	if err != nil {
		return err
	}
	gw, err := gateway.New(mc.gateway, b, log, hiveReg)
	if err != nil {
		return err
	}
	caps, err := capabilities.New(mc.capabilities, b, log)
	if err != nil {
		return err
	}
	disc, err := discovery.New(mc.discovery, b, log, hiveReg)
	if err != nil {
		return err
	}
	jobsMod, err := jobs.New(mc.jobs, b, log, hiveReg)
	if err != nil {
		return err
	}
	ctx, err = onShutdownRequest(ctx, b, log)
	if err != nil {
		return err
	}
	log.Info("hive starting", "hive_id", cfg.HiveID, "listen", mc.gateway.Listen, "advertise_host", host, "version", version)
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
