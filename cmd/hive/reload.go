package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/rbee/hive/internal/workerproc"
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

// appliers change the running modules for each setting declared
// Reloadable (settings.Reloadable) to next's value. The token files'
// tokens are applied with the tokens themselves (applySecrets).
func appliers(cur, next *config, lv *live) map[string]func() error {
	return map[string]func() error{
		"log-level": func() error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(next.LogLevel)); err != nil {
				return err
			}
			if cur.logLevel != nil {
				cur.logLevel.Set(lvl)
			}
			return nil
		},
		"worker-match": func() error {
			pattern, on := workerproc.ParseMatch(next.WorkerMatch)
			if err := lv.collector.SetWorkerMatch(pattern, on); err != nil {
				return err
			}
			return lv.jobs.SetWorkerMatch(pattern, on)
		},
		"cors-origins":        func() error { lv.gateway.SetCORSOrigins(next.HTTP.CORSOrigins); return nil },
		"queen-allow":         func() error { return lv.discovery.SetQueenAllow(next.Queen.QueenAllow) },
		"api-token-file":      func() error { return nil },
		"api-read-token-file": func() error { return nil },
	}
}

// applySecrets applies the tokens (from their files or the environment)
// where they changed, and returns what it applied and refused.
func applySecrets(cur, next *config, lv *live, log *slog.Logger) (applied, refused []string) {
	for _, s := range []struct {
		name      string
		cur, next *string
		set       func(string) error
	}{
		{"api token", &cur.apiToken, &next.apiToken, lv.gateway.SetToken},
		{"read token", &cur.apiReadToken, &next.apiReadToken, lv.gateway.SetReadToken},
	} {
		if *s.cur == *s.next {
			continue
		}
		if err := s.set(*s.next); err != nil {
			log.Error("reload: "+s.name+" not changed", "err", err)
			refused = append(refused, s.name)
			continue
		}
		*s.cur = *s.next
		applied = append(applied, s.name)
	}
	return applied, refused
}

// reload loads the configuration again and applies what changed where a
// setting is declared Reloadable; it names the rest as needing a restart.
func reload(cur *config, lv *live, log *slog.Logger) {
	next, err := loadConfig(cur.args, os.LookupEnv, io.Discard)
	if err != nil {
		log.Error("reload: the configuration does not load; nothing changed", "err", err)
		return
	}
	applied, refused := applySecrets(cur, next, lv, log)
	a, r, restart := cur.set.Apply(next.set, appliers(cur, next, lv), func(flag string, err error) {
		log.Error("reload: "+flag+" not changed", "err", err)
	})
	log.Info("reloaded the configuration", "applied", append(applied, a...), "refused", append(refused, r...), "need_a_restart", restart)
}
