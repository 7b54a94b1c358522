//go:build compose

package deployments_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive/client"
	"github.com/rbee/hive/internal/hubcluster"
)

// hubNodes are the hub's services; their host ports come from hostPort.
var hubNodes = []string{"hub-1", "hub-2", "hub-3"}

func hubClientURLs(t *testing.T) string {
	var u []string
	for i := range hubNodes {
		u = append(u, hubURL(t, i))
	}
	return strings.Join(u, ",")
}

// attachments maps each hive to the index of the hub node its leafnode is on.
func attachments(t *testing.T) (map[string]int, error) {
	out := map[string]int{}
	for i := range hubNodes {
		names, err := hubcluster.LeafNames(context.Background(), hubMonitor(t, i))
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			out[name] = i
		}
	}
	if len(out) != len(hives) {
		return out, fmt.Errorf("attached: %v", out)
	}
	return out, nil
}

// containerStarts is each hive container's restart count and start time.
func containerStarts(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, id := range hives {
		b, err := exec.Command("docker", "inspect", "-f", "{{.RestartCount}} {{.State.StartedAt}}", containerID(t, id)).Output()
		if err != nil {
			t.Fatalf("docker inspect %s: %v", id, err)
		}
		out[id] = strings.TrimSpace(string(b))
	}
	return out
}

// hubFailover stops the hub node that hive-1 is attached to: every hive's
// telemetry reaches a subscriber on a surviving node again, the history
// stream keeps storing, no hive restarts; the node starts again and the
// stream's replicas catch up. It logs each hive's gap.
func hubFailover(t *testing.T) {
	var at map[string]int
	waitUntil(t, 30*time.Second, "every hive attached to a hub node", func() (err error) {
		at, err = attachments(t)
		return err
	})
	victim := at["hive-1"]
	survivor := (victim + 1) % len(hubNodes)
	t.Logf("attachments %v: stopping %s, watching from %s", at, hubNodes[victim], hubNodes[survivor])

	a := hubcluster.NewArrivals()
	// Live telemetry as anyone reads it; the stream's state as the named
	// reader (an anonymous client reaches no JetStream API).
	live, err := nats.Connect(hubURL(t, survivor), hubTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, err := live.Subscribe("hive.telemetry", func(m *nats.Msg) { a.Note(m.Header.Get("Hive-Id"), time.Now()) }); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(hubURL(t, survivor), hubTLS(), nats.UserInfo("reader", readerPassword(t)), nats.CustomInboxPrefix("_READER"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	waitUntil(t, 15*time.Second, "every hive at "+hubNodes[survivor], func() error {
		for _, id := range hives {
			if !a.SeenAfter(id, time.Now().Add(-2*time.Second)) {
				return fmt.Errorf("%s not seen", id)
			}
		}
		return nil
	})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Each request has its own deadline: one sent to the node being
	// stopped gets no answer, and the caller polls again.
	info := func() (*jetstream.StreamInfo, error) {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, client.HistoryStream)
		if err != nil {
			return nil, err
		}
		return s.CachedInfo(), nil
	}
	msgs := func() (uint64, error) {
		i, err := info()
		if err != nil {
			return 0, err
		}
		return i.State.Msgs, nil
	}
	before, err := msgs()
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	starts := containerStarts(t)

	compose(t, "stop", hubNodes[victim])
	stopped := time.Now()
	a.ResetGaps()
	for _, id := range hives {
		waitUntil(t, 10*time.Second, id+" back at "+hubNodes[survivor], func() error {
			if !a.SeenAfter(id, stopped) {
				return fmt.Errorf("not yet")
			}
			return nil
		})
	}
	time.Sleep(1100 * time.Millisecond) // one more tick each: the gaps are final
	gaps := a.Gaps()
	for _, id := range hives {
		moved := ""
		if at[id] == victim {
			moved = ", moved to a surviving node"
		}
		t.Logf("failover: %s longest gap at %s %v%s", id, hubNodes[survivor], gaps[id].Round(time.Millisecond), moved)
	}
	waitUntil(t, 20*time.Second, "the stream storing again", func() error {
		n, err := msgs()
		if err != nil || n < before+6 {
			return fmt.Errorf("%d messages, %d before the stop: %v", n, before, err)
		}
		return nil
	})
	if after := containerStarts(t); fmt.Sprint(after) != fmt.Sprint(starts) {
		t.Errorf("a hive restarted: %v, before %v", after, starts)
	}

	compose(t, "start", hubNodes[victim])
	took := waitUntil(t, 90*time.Second, "the cluster healed", func() error {
		i, err := info()
		if err != nil {
			return err
		}
		c := i.Cluster
		if c == nil || c.Leader == "" || len(c.Replicas) != 2 {
			return fmt.Errorf("cluster %+v", c)
		}
		for _, r := range c.Replicas {
			if !r.Current || r.Offline {
				return fmt.Errorf("replica %+v", *r)
			}
		}
		if err := hubcluster.Healthy(ctx, hubMonitor(t, victim)); err != nil {
			return fmt.Errorf("%s healthz: %v", hubNodes[victim], err)
		}
		return nil
	})
	t.Logf("failover: %s back and the stream's replicas current %v after `start`", hubNodes[victim], took)
}

// hubHistory reads hive-2's last five minutes alone, as the public
// history user (through the historians), from any node. A read during a stream leader election fails
// and is tried again.
func hubHistory(t *testing.T) {
	// The control: what the stream held for hive-2's subject just before
	// the read, which the read must cover.
	var kept uint64
	waitUntil(t, time.Minute, "hive-2's count in the stream", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		nc, err := nats.Connect(hubClientURLs(t), hubTLS(), nats.UserInfo("reader", readerPassword(t)), nats.CustomInboxPrefix("_READER"))
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		s, err := js.Stream(ctx, client.HistoryStream)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter("hive.telemetry.hive-2"))
		if err != nil {
			return err
		}
		if kept = info.State.Subjects["hive.telemetry.hive-2"]; kept == 0 {
			return fmt.Errorf("nothing of hive-2 kept")
		}
		return nil
	})
	var n int
	var other string
	waitUntil(t, time.Minute, "hive-2's history", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		n, other = 0, ""
		return (&client.History{URL: hubClientURLs(t), Options: []nats.Option{hubTLS()}}).Since(ctx, "hive-2", time.Now().Add(-5*time.Minute), func(e client.Event) {
			n++
			if e.Telemetry.HiveID != "hive-2" {
				other = e.Telemetry.HiveID
			}
		})
	})
	if other != "" {
		t.Errorf("hive-2's history holds an event of %q", other)
	}
	if uint64(n) < kept {
		t.Fatalf("hive-2's history: %d events, the stream held %d before the read", n, kept)
	}
	t.Logf("history: hive-2's last 5 minutes, %d events (the stream held %d before the read)", n, kept)
}
