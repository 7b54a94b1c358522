package main

import (
	"log/slog"
	"net"
	"syscall"

	"github.com/rbee/hive/modules/collector"
	"github.com/rbee/hive/modules/gateway"
)

// warnExposure says once, at startup, what an unauthenticated client can
// do on each listener, so that an operator never runs an open hive
// without knowing it.
func warnExposure(cfg *config, log *slog.Logger) {
	switch {
	case cfg.apiToken != "":
		log.Info("API token set: every request but GET /health needs it", "reads_need_token", cfg.HTTP.Access != gateway.AccessOpenReads)
	case cfg.HTTP.Access == gateway.AccessOpen:
		log.Warn("!!! --access open: ANYONE who reaches " + cfg.httpListen() +
			" can spawn and stop processes and shut this hive down. Set HIVE_API_TOKEN or --api-token-file instead.")
	default:
		log.Info("remote control is off until an API token is set (HIVE_API_TOKEN or --api-token-file): jobs, DELETE, shutdown and Queen changes are accepted from loopback only",
			"listen", cfg.httpListen())
	}
	if cfg.apiToken != "" && cfg.HTTP.TLS.CertFile == "" && !loopbackAddr(cfg.httpListen()) {
		log.Warn("the API token travels in clear HTTP beyond loopback: anyone on the path can read it and control this hive (set --tls-cert-file and --tls-key-file)",
			"listen", cfg.httpListen())
	}
	if cfg.NATS.Listen != "" && cfg.NATS.ObserverUser == "" && !loopbackAddr(cfg.NATS.Listen) {
		log.Warn("NATS listens beyond loopback without credentials: anyone who reaches it can read telemetry (set --nats-user and --nats-password-file)",
			"nats_listen", cfg.NATS.Listen)
	}
}

func loopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// fdReserve is how many file descriptors stay free for the collector
// (one /proc file at a time per worker, nvidia-smi pipes), spawned
// workers' logs, NATS and the hive's own files, whatever the HTTP
// clients do.
const fdReserve = 256

// connBudget caps the HTTP connection limits below the process's file
// descriptor limit, keeping fdReserve, the /proc files the collector
// keeps open and the NATS connections free.
func connBudget(cfg *config, log *slog.Logger) (max, perIP int) {
	max, perIP = cfg.HTTP.MaxConns, cfg.HTTP.MaxConnsPerIP
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return max, perIP
	}
	avail := int(min(rl.Cur, 1<<30)) - fdReserve - collector.HeldFiles(rl.Cur) - collector.ProbeSockets - cfg.NATS.Observers.MaxConns
	if avail < 16 {
		avail = 16
	}
	if max > avail {
		log.Warn("--http-max-conns lowered to fit the open-file limit", "requested", max, "used", avail, "nofile", rl.Cur)
		max = avail
	}
	return max, min(perIP, max)
}
