package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/hubcluster"
)

var (
	natsServerOnce sync.Once
	natsServerBin  string
	natsServerErr  error
)

// buildNATSServer builds the official nats-server from the module this
// project already depends on (the same code as the hub image).
func buildNATSServer(t *testing.T) string {
	t.Helper()
	natsServerOnce.Do(func() {
		natsServerBin = filepath.Join(binDir, "nats-server")
		cmd := exec.Command("go", "build", "-o", natsServerBin, "github.com/nats-io/nats-server/v2")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			natsServerErr = fmt.Errorf("build nats-server: %v\n%s", err, out)
		}
	})
	if natsServerErr != nil {
		t.Fatal(natsServerErr)
	}
	return natsServerBin
}

// hubReaderPassword is the named reader's password in the test clusters.
const hubReaderPassword = "s3cret-reader"

// startHubCluster runs n nodes of deployments/hub.conf as local
// processes, with test secrets, and waits until they formed a cluster.
func startHubCluster(t *testing.T, n int) *hubcluster.Cluster {
	t.Helper()
	cl, err := hubcluster.Start(buildNATSServer(t), "../../deployments/hub.conf", t.TempDir(), n,
		hubcluster.Passwords{Leaf: "s3cret-leaf", Route: "s3cret-route", Admin: "s3cret-admin", Reader: hubReaderPassword, Historian: "s3cret-historian"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cl.StartHistorians(hiveBin); err != nil {
		t.Fatal(err)
	}
	return cl
}

// Three hive processes export to one hub over leafnodes; the hub sees each
// one every tick, a stopped hive drops out without disturbing the others,
// and a restarted hub gets every hive back.
func TestManyHivesOverAHub(t *testing.T) {
	hub := startHubCluster(t, 1)
	procs := map[string]*hiveProc{}
	for _, id := range []string{"hub-a", "hub-b", "hub-c"} {
		procs[id] = startHiveEnv(t, hub.HiveEnv(), "--hive-id", id, "--telemetry-interval", "250ms")
	}
	// hub.conf has TLS on every port: a hive with the hub's URL but not
	// its CA and certificate never attaches, and a plaintext client is
	// refused.
	plain := startHiveEnv(t, []string{"HIVE_NATS_HUB=" + hub.LeafURLs()}, "--hive-id", "hub-plain", "--telemetry-interval", "250ms")
	if nc, err := nats.Connect(hub.ClientURL(0)); err == nil {
		nc.Close()
		t.Error("a plaintext client connected to the hub")
	}

	var mu sync.Mutex
	seen := map[string]int{}
	reset := func() { mu.Lock(); seen = map[string]int{}; mu.Unlock() }
	count := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for k, v := range seen {
			out[k] = v
		}
		return out
	}
	asyncErr := make(chan error, 4)
	var nc *nats.Conn
	bustest.WaitFor(t, 10*time.Second, func() error {
		var err error
		nc, err = nats.Connect(hub.ClientURL(0), hub.TLS(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				select {
				case asyncErr <- err:
				default:
				}
			}))
		return err
	})
	defer nc.Close()
	if _, err := nc.Subscribe(wire.SubjectTelemetry, func(m *nats.Msg) {
		var ev wire.TelemetryEvent
		if json.Unmarshal(m.Data, &ev) != nil || m.Header.Get(wire.HeaderHiveID) != ev.HiveID {
			t.Errorf("hub message %q", m.Data)
			return
		}
		mu.Lock()
		seen[ev.HiveID]++
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	allThree := func(ids ...string) func() error {
		return func() error {
			c := count()
			for _, id := range ids {
				if c[id] < 2 {
					return fmt.Errorf("counts %v", c)
				}
			}
			return nil
		}
	}
	bustest.WaitFor(t, 15*time.Second, allThree("hub-a", "hub-b", "hub-c"))
	bustest.WaitFor(t, 15*time.Second, func() error {
		if !strings.Contains(plain.logText(), "TLS leafnode handshake error") {
			return fmt.Errorf("the plaintext hive logged no TLS failure: %s", plain.logText())
		}
		return nil
	})
	if n := count()["hub-plain"]; n != 0 {
		t.Errorf("the hub got %d events from a hive without TLS", n)
	}

	// Hub clients only read.
	_ = nc.Publish(wire.SubjectJobsCreate, []byte("{}"))
	select {
	case err := <-asyncErr:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("publish at the hub: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a hub client could publish")
	}

	// One hive goes; the others carry on.
	if _, err := procs["hub-b"].stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	reset()
	// Poll for the others' next three ticks, then look for hub-b in the
	// same window: it exited before the window opened.
	bustest.WaitFor(t, 10*time.Second, func() error {
		if c := count(); c["hub-a"] < 3 || c["hub-c"] < 3 {
			return fmt.Errorf("after stopping hub-b: %v", c)
		}
		return nil
	})
	if c := count(); c["hub-b"] != 0 {
		t.Fatalf("hub-b still seen after it stopped: %v", c)
	}

	// The hub goes away: hives keep serving SSE; it comes back on the same
	// ports and every running hive resumes.
	hub.StopNode(0)
	sse := openSSE(t, procs["hub-a"].httpBase+"/v1/heartbeats/stream")
	sse.next(t, 3*time.Second)
	sse.next(t, 3*time.Second)
	if err := hub.StartNode(0); err != nil {
		t.Fatal(err)
	}
	reset()
	start := time.Now()
	bustest.WaitFor(t, 10*time.Second, allThree("hub-a", "hub-c"))
	t.Logf("hives resumed %v after the hub restarted", time.Since(start))
}
