package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rbee/hive/bus/wire"
)

// tmpfsWrapper is a script that runs the hive with a tmpfs of
// HIVE_TMPFS_SIZE mounted on HIVE_TMPFS_DIR, in a mount namespace of its
// own (a user namespace too when not root), so that the mount goes with
// the process. It skips the test where the machine allows neither.
func tmpfsWrapper(t *testing.T) (script string, unshare []string) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare(1): a full disk cannot be made without root")
	}
	unshare = []string{"--mount", "--propagation", "private"}
	if os.Geteuid() != 0 {
		unshare = append([]string{"--user", "--map-root-user"}, unshare...)
	}
	probe := t.TempDir()
	args := append(unshare, "sh", "-c", `mount -t tmpfs -o size=64k tmpfs "$0"`, probe)
	if b, err := exec.Command("unshare", args...).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs in a namespace here (%v: %s): the full-disk test needs it", err, b)
	}
	script = filepath.Join(t.TempDir(), "hive-on-tmpfs")
	body := "#!/bin/sh\nexec unshare " + strings.Join(unshare, " ") +
		` sh -c 'mount -t tmpfs -o size=$HIVE_TMPFS_SIZE,mode=0700 tmpfs "$HIVE_TMPFS_DIR" && exec "$HIVE_REAL_BIN" "$@"' sh "$@"` + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, unshare
}

// The hub store's disk fills while the hub is away: the hive says so in
// its health (degraded, naming the store) and counts what it could not
// keep; it does not crash, and its live telemetry goes on.
func TestHubStoreDiskFullDegrades(t *testing.T) {
	t.Parallel()
	script, _ := tmpfsWrapper(t)
	state := t.TempDir()
	store := filepath.Join(state, "hub-outbox")
	if err := os.Mkdir(store, 0o700); err != nil {
		t.Fatal(err)
	}
	// No hub listens at the ingest URL: everything stays in the store.
	env := []string{"HIVE_TMPFS_DIR=" + store, "HIVE_TMPFS_SIZE=128k", "HIVE_REAL_BIN=" + hiveBin,
		"HIVE_NATS_HUB_INGEST=nats://hive:pw@127.0.0.1:1"}
	p := startHiveBin(t, script, env, "--hive-id", "full-disk", "--telemetry-interval", "50ms", "--state-dir", state)
	sse := openSSE(t, p.httpBase+"/v1/heartbeats/stream")
	next := func() wire.TelemetryEvent {
		t.Helper()
		var ev wire.TelemetryEvent
		if err := json.Unmarshal([]byte(sse.next(t, 10*time.Second).Data), &ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	deadline := time.Now().Add(2 * time.Minute)
	var ev wire.TelemetryEvent
	for ev = next(); ev.HiveInfo.HealthStatus.Status != wire.HealthDegraded; ev = next() {
		if time.Now().After(deadline) {
			t.Fatalf("no degraded health after 2 minutes of a 128 KiB store; last %+v", ev.HiveInfo.HealthStatus)
		}
	}
	t.Logf("health: %+v", ev.HiveInfo.HealthStatus)
	for _, l := range strings.Split(p.logText(), "\n") {
		if strings.Contains(l, `"component":"hub-outbox"`) {
			t.Log(l)
		}
	}
	if r := ev.HiveInfo.HealthStatus.Reason; !strings.Contains(r, "hub store") || !strings.Contains(r, store) || !strings.Contains(r, "restart the hive") {
		t.Errorf("the reason does not name the hub store %s: %q", store, ev.HiveInfo.HealthStatus.Reason)
	}
	for range 20 {
		next() // live telemetry goes on
	}
	select {
	case <-p.exited:
		t.Fatalf("the hive exited: %v", p.exitErr)
	default:
	}
	_, body, _ := httpGet(t, p.httpBase+"/metrics")
	if n, _ := metricValue(body, "hive_hub_dropped_total", `reason="store"`); n == 0 {
		t.Errorf("hive_hub_dropped_total{reason=\"store\"} is 0 with a full store")
	}
	if h, _ := metricValue(body, "hive_health"); h != 1 {
		t.Errorf("hive_health %v, want 1 (degraded)", h)
	}
}
