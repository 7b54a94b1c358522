package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"syscall"

	"github.com/rbee/hive/modules/gateway"
)

// reloadOnHUP reads the configuration again (command line, environment,
// file) on every SIGHUP (systemctl reload) until ctx ends, and applies what
// can change while the hive runs: the log level and the API token (its
// file or HIVE_API_TOKEN; TLS certificates are read again on their own).
// Everything else it names in one log line as needing a restart. No
// stream is dropped.
func reloadOnHUP(ctx context.Context, cur *config, gw *gateway.Gateway, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload(cur, gw, log)
			}
		}
	}()
}

func reload(cur *config, gw *gateway.Gateway, log *slog.Logger) {
	next, err := loadConfig(cur.args, os.LookupEnv, io.Discard)
	if err != nil {
		log.Error("reload: the configuration does not load; nothing changed", "err", err)
		return
	}
	var applied []string
	if next.LogLevel != cur.LogLevel && cur.logLevel != nil {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(next.LogLevel)); err == nil {
			cur.logLevel.Set(lvl)
			cur.LogLevel = next.LogLevel
			applied = append(applied, "log-level")
		}
	}
	if next.apiToken != cur.apiToken {
		if err := gw.SetToken(next.apiToken); err != nil {
			log.Error("reload: API token not changed", "err", err)
		} else {
			cur.apiToken = next.apiToken
			applied = append(applied, "api token")
		}
	}
	// What differs besides needs a restart: compare with the applied and
	// the per-run fields made equal.
	a, b := *cur, *next
	a.args, b.args, a.logLevel, b.logLevel = nil, nil, nil, nil
	b.LogLevel, b.apiToken = a.LogLevel, a.apiToken
	restart := []string{}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		if f := va.Type().Field(i); f.IsExported() && !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			restart = append(restart, f.Name)
		}
	}
	log.Info("reloaded the configuration", "applied", applied, "need_a_restart", restart)
}
