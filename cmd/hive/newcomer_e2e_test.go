package main

// A newcomer's first hour, third round (issue 30): every error says what
// is wrong and what to do, in one line, without a misleading second one.

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rbee/hive/bus/bustest"
)

// runHive runs the binary with args under a deadline and returns its
// combined output and exit error.
func runHive(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hiveBin, args...)
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestStartErrorsSayWhatToDo(t *testing.T) {
	base := []string{"--port", "0", "--nats-listen", "", "--state-dir", t.TempDir()}
	for _, c := range []struct {
		name     string
		args     []string
		want     string
		notWant  string
		maxLines int
	}{
		{"queen URL without scheme", []string{"--queen-url", "queen:7833"},
			`--queen-url "queen:7833": want a URL with its scheme, e.g. http://queen:7833`, "allowed hosts", 1},
		{"listen as a bare port", []string{"--listen", "7836"},
			`--listen "7836": want HOST:PORT, e.g. 0.0.0.0:7836 (or --port 7836)`, "missing port", 1},
		{"duration without unit", []string{"--telemetry-interval", "1"},
			`--telemetry-interval "1": want a duration with its unit, such as 500ms, 10s or 1m`, "parse error", 1},
		{"space in the hive id", []string{"--hive-id", "my hive"},
			`--hive-id "my hive": no spaces or control characters (it names the hive's NATS server)`, "server name", 1},
		{"unknown flag", []string{"--nvml-library", "x"},
			"unknown flag --nvml-library (hive --help lists every setting)", "Usage:", 1},
	} {
		out, err := runHive(t, nil, append(base, c.args...)...)
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%s: exit %v, want 2\n%s", c.name, err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if !strings.Contains(out, c.want) || strings.Contains(out, c.notWant) || len(lines) > c.maxLines {
			t.Errorf("%s:\n%s\nwant %q in %d line(s), without %q", c.name, out, c.want, c.maxLines, c.notWant)
		}
	}
}

// Running: a plain-HTTP healthcheck of a TLS hive, hive watch without the
// token a hive needs, --once against a host that does not resolve, a
// hive that looks for the default Queen.
func TestRunErrorsSayWhatToDo(t *testing.T) {
	f := newTLSFixture(t)
	tlsHive := startHive(t, "--tls-cert-file", f.certFile, "--tls-key-file", f.keyFile)
	plain := "http://" + strings.TrimPrefix(tlsHive.httpBase, "https://") + "/health"
	out, err := runHive(t, nil, "healthcheck", "--url", plain)
	if err == nil || !strings.Contains(out, "this port speaks HTTPS") || !strings.Contains(out, "--url https://") {
		t.Errorf("healthcheck over plain HTTP to a TLS hive: %v\n%s", err, out)
	}

	tokHive := startHiveEnv(t, []string{"HIVE_API_TOKEN=" + e2eToken})
	out, err = runHive(t, []string{"HIVE_API_TOKEN="}, "watch", "--once", "--url", tokHive.httpBase)
	if err == nil || !strings.Contains(out, "the hive needs a token") || strings.Contains(out, "refused the token") {
		t.Errorf("hive watch without the token a hive needs: %v\n%s", err, out)
	}

	start := time.Now()
	out, err = runHive(t, nil, "watch", "--once", "--url", "http://no-such-hive.invalid:7835", "--timeout", "2s")
	if err == nil || !strings.Contains(out, "no telemetry from http://no-such-hive.invalid:7835 within 2s") || time.Since(start) > 20*time.Second {
		t.Errorf("hive watch --once at an unresolvable host: %v after %v\n%s", err, time.Since(start), out)
	}

	// The harness runs standalone; this hive keeps the default Queen, as
	// the docs' examples do: one line says so, with how to go standalone.
	def := startHive(t, "--queen-url", "http://localhost:7833")
	bustest.WaitFor(t, 15*time.Second, func() error {
		if !def.hasLog(`no Queen at the default URL: this hive keeps looking for one there, quietly; join another with --queen-url, or run standalone with --queen-url "" (HIVE_QUEEN_URL="")`) {
			return errNotYet
		}
		return nil
	})
	// The next attempts are debug lines, counted all the same.
	bustest.WaitFor(t, 15*time.Second, func() error {
		_, body, _ := httpGet(t, def.httpBase+"/metrics")
		if v, _ := metricValue(body, "hive_discovery_push_failures_total"); v < 2 {
			return errNotYet
		}
		return nil
	})
	if n := def.countLogs("discovery attempt failed"); n != 0 {
		t.Errorf("%d failed attempts at the default Queen logged at info", n)
	}
}

var errNotYet = errors.New("not yet")

// hive config says where each setting came from (TROUBLESHOOTING.md says
// it does): the default, the file, the environment or the command line.
func TestConfigSaysWhereEachSettingCameFrom(t *testing.T) {
	file := t.TempDir() + "/hive.yaml"
	writePrivate(t, file, "workers:\n  telemetry-interval: 2s\n")
	out, err := runHive(t, []string{"HIVE_PORT=7999"}, "config", "--config", file, "--hive-id", "gpu-9")
	if err != nil {
		t.Fatalf("hive config: %v\n%s", err, out)
	}
	for _, want := range []string{
		`hive-id: "gpu-9" # command line --hive-id`,
		`port: "7999" # environment HIVE_PORT`,
		`telemetry-interval: "2s" # file ` + file,
		`log-format: "text" # default`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("hive config lacks %q:\n%s", want, out)
		}
	}
}
