package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/rbee/hive/modules/collector"
	"github.com/rbee/hive/modules/discovery"
	"github.com/rbee/hive/modules/gateway"
	"github.com/rbee/hive/modules/jobs"
)

// live holds the modules whose settings a reload can change.
type live struct {
	gateway   *gateway.Gateway
	collector *collector.Collector
	discovery *discovery.Discovery
	jobs      *jobs.Jobs
}

// reloadOnHUP reads the configuration again (command line, environment,
// file) on every SIGHUP (systemctl reload) until ctx ends, and applies what
// can change while the hive runs: the log level, the API token (its file
// or HIVE_API_TOKEN), the worker pattern, the CORS origins and the Queen
// allow-list; TLS certificates are read again on their own, whenever
// their files change. Everything else it names in one log line as needing
// a restart. No stream is dropped.
func reloadOnHUP(ctx context.Context, cur *config, lv *live, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload(cur, lv, log)
			}
		}
	}()
}

// A setting a reload applies: whether it changed, and how to apply it
// (nil when it applied), given the next configuration.
type liveSetting struct {
	name    string
	changed func(cur, next *config) bool
	apply   func(next *config) error
	// adopt copies the applied value into cur.
	adopt func(cur, next *config)
}

func liveSettings(cur *config, lv *live) []liveSetting {
	return []liveSetting{
		{"log-level",
			func(c, n *config) bool { return n.LogLevel != c.LogLevel && c.logLevel != nil },
			func(n *config) error {
				var lvl slog.Level
				if err := lvl.UnmarshalText([]byte(n.LogLevel)); err != nil {
					return err
				}
				cur.logLevel.Set(lvl)
				return nil
			},
			func(c, n *config) { c.LogLevel = n.LogLevel }},
		{"api token",
			func(c, n *config) bool { return n.apiToken != c.apiToken },
			func(n *config) error { return lv.gateway.SetToken(n.apiToken) },
			func(c, n *config) { c.apiToken = n.apiToken }},
		{"read token",
			func(c, n *config) bool { return n.apiReadToken != c.apiReadToken },
			func(n *config) error { return lv.gateway.SetReadToken(n.apiReadToken) },
			func(c, n *config) { c.apiReadToken = n.apiReadToken }},
		{"worker-match",
			func(c, n *config) bool { return n.WorkerMatch != c.WorkerMatch },
			func(n *config) error {
				pattern, on := workerMatch(n.WorkerMatch)
				if err := lv.collector.SetWorkerMatch(pattern, on); err != nil {
					return err
				}
				return lv.jobs.SetWorkerMatch(pattern, on)
			},
			func(c, n *config) { c.WorkerMatch = n.WorkerMatch }},
		{"cors-origins",
			func(c, n *config) bool { return n.CORSOrigins != c.CORSOrigins },
			func(n *config) error { lv.gateway.SetCORSOrigins(splitList(n.CORSOrigins)); return nil },
			func(c, n *config) { c.CORSOrigins = n.CORSOrigins }},
		{"queen-allow",
			func(c, n *config) bool { return n.Queen.QueenAllow != c.Queen.QueenAllow },
			func(n *config) error { return lv.discovery.SetQueenAllow(n.Queen.QueenAllow) },
			func(c, n *config) { c.Queen.QueenAllow = n.Queen.QueenAllow }},
	}
}

func reload(cur *config, lv *live, log *slog.Logger) {
	next, err := loadConfig(cur.args, os.LookupEnv, io.Discard)
	if err != nil {
		log.Error("reload: the configuration does not load; nothing changed", "err", err)
		return
	}
	applied, refused := []string{}, []string{}
	for _, s := range liveSettings(cur, lv) {
		if !s.changed(cur, next) {
			continue
		}
		if err := s.apply(next); err != nil {
			log.Error("reload: "+s.name+" not changed", "err", err)
			refused = append(refused, s.name)
			continue
		}
		s.adopt(cur, next)
		applied = append(applied, s.name)
	}
	// What differs besides needs a restart: compare with what a reload
	// handles made equal (applied or refused, each logged already).
	a, b := *cur, *next
	a.args, b.args, a.logLevel, b.logLevel = nil, nil, nil, nil
	for _, s := range liveSettings(cur, lv) {
		s.adopt(&b, &a)
	}
	// Named by their settings: flag sets bound to copies (newFlagSet
	// resets what it binds) read a's and b's values once they are put back.
	restart := []string{}
	var ca, cb config
	fa, fb := newFlagSet(&ca), newFlagSet(&cb)
	ca, cb = a, b
	fa.VisitAll(func(f *flag.Flag) {
		if !commandFlags[f.Name] && f.Value.String() != fb.Lookup(f.Name).Value.String() {
			restart = append(restart, f.Name)
		}
	})
	slices.Sort(restart)
	log.Info("reloaded the configuration", "applied", applied, "refused", refused, "need_a_restart", restart)
}
