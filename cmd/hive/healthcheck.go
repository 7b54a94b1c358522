package main

import (
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rbee/hive/internal/text"
)

// healthCheck runs `hive healthcheck [--url URL]`: it probes a running
// hive's /health, for container healthchecks in images that have no curl.
// Without --url it asks the hive on this machine, at the port the
// environment and the config file set.
func healthCheck(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) int {
	fs := flag.NewFlagSet("hive healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	u := fs.String("url", "", "URL to probe (default http://127.0.0.1:<the hive's port>/health)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *u == "" {
		cfg, err := loadConfig(nil, lookupEnv, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "hive healthcheck:", err)
			return 2
		}
		_, port, _ := net.SplitHostPort(cfg.httpListen())
		*u = cfg.scheme() + "://127.0.0.1:" + port + "/health"
	}
	c := &http.Client{
		Timeout:       3 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		// The probe reads GET /health of this machine's hive over
		// loopback, whose certificate names the machine, not 127.0.0.1:
		// it checks liveness, not identity, and sends nothing secret.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}}, //nolint:gosec // see above
	}
	resp, err := c.Get(*u)
	if err != nil {
		fmt.Fprintln(stderr, "unhealthy:", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The hive's errors are JSON and say what is wrong, e.g. plain
		// HTTP to its TLS port.
		var e struct{ Error string }
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e)
		msg := fmt.Sprintf("unhealthy: %s: status %d", *u, resp.StatusCode)
		if e.Error != "" {
			msg += ": " + text.Printable(e.Error)
		}
		if strings.Contains(e.Error, "speaks HTTPS") {
			msg += " (hive healthcheck --url " + strings.Replace(*u, "http://", "https://", 1) + ")"
		}
		fmt.Fprintln(stderr, msg)
		return 1
	}
	return 0
}
