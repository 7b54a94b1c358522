// Command hive is the per-machine daemon of an LLM-inference cluster: it
// samples the worker processes, streams their telemetry over SSE and NATS,
// answers the Queen's discovery handshake and runs worker jobs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
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

// run is the whole command line: a subcommand (config, healthcheck,
// watch), help, or the hive itself. It returns the exit code: 2 for a bad
// command line or configuration.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "watch":
			return watch(args[1:], stdout, stderr)
		case "config":
			return printConfig(args[1:], stdout, stderr)
		case "healthcheck":
			return healthCheck(args[1:], os.LookupEnv, stderr)
		case "worker-log":
			return workerLog(args[1:], os.Stdin, stderr)
		case "historian":
			return historianCmd(args[1:], os.LookupEnv, stderr)
		case "help", "-h", "-help", "--help":
			usage(newSettings(new(config)), stdout)
			return 0
		}
	}
	cfg, err := loadConfig(args, os.LookupEnv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "hive:", err)
		return 2
	}
	if cfg.Version {
		fmt.Fprintf(stdout, "hive %s (commit %s, %s)\n", version, commit(), runtime.Version())
		return 0
	}
	cfg.args, cfg.logLevel = args, new(slog.LevelVar)
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

// printConfig runs `hive config [flags]`: the configuration those flags,
// the environment and the file make, secrets masked.
func printConfig(args []string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(args, os.LookupEnv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "hive config:", err)
		return 2
	}
	cfg.print(stdout)
	return 0
}

// newLogger logs at cfg.LogLevel, through cfg.logLevel when set so that a
// reload (SIGHUP) can change it.
func newLogger(cfg *config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	var leveler slog.Leveler = lvl
	if cfg.logLevel != nil {
		cfg.logLevel.Set(lvl)
		leveler = cfg.logLevel
	}
	opts := &slog.HandlerOptions{Level: leveler}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
