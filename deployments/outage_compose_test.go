//go:build compose

package deployments_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive/client"
)

// sseStamps reads a hive's SSE stream from the host until ctx ends and
// returns the timestamps of the events it sent.
func sseStamps(ctx context.Context, port string) map[string]bool {
	out := map[string]bool{}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://127.0.0.1:"+port+"/v1/heartbeats/stream", nil)
	resp, err := httpsClient().Do(req)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ev struct {
				Timestamp string `json:"timestamp"`
			}
			if json.Unmarshal([]byte(d), &ev) == nil {
				out[ev.Timestamp] = true
			}
		}
	}
	return out
}

// hubOutage stops every hub node for 20 s and starts them again: hive-1
// kept what it published meanwhile (read from its SSE stream on the
// host), and the hub's history then holds all of it, in order, once.
func hubOutage(t *testing.T) {
	port := hivePort(t, "hive-1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stamps := make(chan map[string]bool, 1)
	// The stream on the host is the control: what hive-1 published.
	go func() { stamps <- sseStamps(ctx, port) }()
	time.Sleep(2 * time.Second)
	from := time.Now()
	compose(t, append([]string{"stop"}, hubNodes...)...)
	time.Sleep(20 * time.Second)
	to := time.Now()
	compose(t, append([]string{"start"}, hubNodes...)...)
	var sent map[string]bool
	took := waitUntil(t, 3*time.Minute, "hive-1's outage in the hub's history", func() error {
		if sent == nil {
			time.Sleep(time.Second) // the stream has sent the events stamped up to now
			cancel()
			sent = <-stamps
		}
		return outageKept(t, sent, from, to)
	})
	t.Logf("hub outage: every node stopped %v; hive-1's events of the outage all in the history, in order, %v after `start`",
		to.Sub(from).Round(time.Second), took)
}

// outageKept is nil once hive-1's history holds every event of sent
// stamped in [from, to], each once, in order.
func outageKept(t *testing.T, sent map[string]bool, from, to time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var got []string
	h := client.History{URL: hubClientURLs(t), Options: []nats.Option{hubTLS()}}
	if err := h.Since(ctx, "hive-1", from.Add(-time.Second), func(e client.Event) { got = append(got, e.Telemetry.Timestamp) }); err != nil {
		return err
	}
	in := map[string]bool{}
	for i, ts := range got {
		if in[ts] || (i > 0 && ts <= got[i-1]) {
			t.Fatalf("hive-1's history: %s after %s (out of order or twice)", ts, got[max(i-1, 0)])
		}
		in[ts] = true
	}
	want, missing := 0, 0
	for ts := range sent {
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || at.Before(from) || at.After(to) {
			continue
		}
		want++
		if !in[ts] {
			missing++
		}
	}
	if want < 15 || missing > 0 {
		return fmt.Errorf("%d of hive-1's %d events stamped in the outage are not in the history yet", missing, want)
	}
	return nil
}
