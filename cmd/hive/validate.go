package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/gpu"
)

// validateFirst checks the hive id, the ports and the Queen's URL.
func (c *config) validateFirst() error {
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("--port %d out of range: want 0-65535", c.Port))
	}
	switch {
	case strings.TrimSpace(c.HiveID) == "":
		errs = append(errs, errors.New("--hive-id must not be empty"))
	case strings.IndexFunc(c.HiveID, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		errs = append(errs, fmt.Errorf("--hive-id %q: no spaces or control characters (it names the hive's NATS server); use letters, digits, '-', '_' and dots", c.HiveID))
	case c.NATS.Hub != "" && !hiveIDRe.MatchString(c.HiveID):
		errs = append(errs, fmt.Errorf("--hive-id %q with --nats-hub: use letters, digits, '-', '_' and single dots, at most 128 (it names the hive's subject at the hub, hive.telemetry.<hive id>)", c.HiveID))
	}
	if c.Listen != "" {
		if _, err := strconv.Atoi(c.Listen); err == nil {
			errs = append(errs, fmt.Errorf("--listen %q: want HOST:PORT, e.g. 0.0.0.0:%s (or --port %s)", c.Listen, c.Listen, c.Listen))
		} else if _, p, err := net.SplitHostPort(c.Listen); err != nil || p == "" {
			errs = append(errs, fmt.Errorf("--listen %q: want HOST:PORT, e.g. 0.0.0.0:7835 or 127.0.0.1:7835", c.Listen))
		}
	}
	if q := c.Queen.QueenURL; q != "" && wire.ValidateQueenURL(q) != nil {
		hint := "want http:// or https://, a host and a port, e.g. http://queen:7833"
		if !strings.Contains(q, "://") {
			hint = "want a URL with its scheme, e.g. http://" + q
		}
		errs = append(errs, fmt.Errorf("--queen-url %q: %s (\"\" runs standalone)", q, hint))
	}
	return errors.Join(errs...)
}

// hiveIDRe is what a hive id may be: NATS tokens of letters, digits, '-'
// and '_', separated by single dots (wire.TelemetrySubjectFor).
var hiveIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}(\.[A-Za-z0-9_-]+)*$`)

// privateKeyFile refuses a TLS key that group or others may read.
// name is the setting as the operator sets it.
func privateKeyFile(name, path string) error {
	if path == "" {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := ownerOnly(path, st); err != nil {
		return fmt.Errorf("%s %w", name, err)
	}
	return nil
}

// validate checks the settings that belong to cmd/hive, then every
// module's configuration as serve would build it, with the module's own
// Validate.
func (c *config) validate() error {
	// What a newcomer types first is checked first, each with what it
	// wants: a module's own check of the same value would only add a
	// second, vaguer line.
	if err := c.validateFirst(); err != nil {
		return err
	}
	var errs []error
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	for name, path := range map[string]string{"--tls-key-file": c.HTTP.TLS.KeyFile, "tls.nats-key-file": c.NATSTLS.key, "tls.nats-hub-key-file": c.HubTLS.key} {
		if err := privateKeyFile(name, path); err != nil {
			errs = append(errs, err)
		}
	}
	if (c.NATSTLS.cert == "") != (c.NATSTLS.key == "") || (c.NATSTLS.clientCA != "" && c.NATSTLS.cert == "") {
		errs = append(errs, errors.New("tls.nats-cert-file and tls.nats-key-file (HIVE_NATS_TLS_CERT_FILE, HIVE_NATS_TLS_KEY_FILE) go together, and a client CA needs them"))
	}
	if (c.HubTLS.cert == "") != (c.HubTLS.key == "") {
		errs = append(errs, errors.New("tls.nats-hub-cert-file and tls.nats-hub-key-file (HIVE_NATS_HUB_CERT_FILE, HIVE_NATS_HUB_KEY_FILE) go together"))
	}
	if c.NATS.Observers.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("--nats-max-conns %d must be at least 1", c.NATS.Observers.MaxConns))
	}
	for _, hub := range strings.Split(c.NATS.Hub, ",") {
		if u, err := url.Parse(strings.TrimSpace(hub)); hub != "" && err == nil && u.User != nil {
			if pw, _ := u.User.Password(); pw == "change-me" {
				errs = append(errs, errors.New("--nats-hub: the leafnode password is the old shipped default; generate one (make compose-env writes deployments/.env)"))
			}
		}
	}
	if c.PprofListen != "" && !loopbackAddr(c.PprofListen) {
		errs = append(errs, fmt.Errorf("--pprof-listen %s: loopback addresses only", c.PprofListen))
	}
	if c.ShutdownTimeout < time.Second {
		errs = append(errs, fmt.Errorf("--shutdown-timeout %v too short (min 1s)", c.ShutdownTimeout))
	}
	if _, _, err := gpu.Runner(c.GPUSource); err != nil {
		errs = append(errs, fmt.Errorf("--gpu-source: %w", err))
	}
	errs = append(errs, c.modules(wire.HiveInfo{ID: c.HiveID}).validate())
	return errors.Join(errs...)
}
