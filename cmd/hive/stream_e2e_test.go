package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	r3sse "github.com/r3labs/sse/v2"
	gosse "github.com/tmaxmax/go-sse"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
)

// The two best-known Go SSE client libraries decode every event of the
// stream, the first included: no block without data reaches them.
func TestThirdPartySSEClients(t *testing.T) {
	h := startHive(t, "--telemetry-interval", "200ms")
	url := h.httpBase + "/v1/heartbeats/stream"
	decode := func(lib string, data []byte) {
		var ev wire.TelemetryEvent
		if err := json.Unmarshal(data, &ev); err != nil || ev.Type != "telemetry" {
			t.Errorf("%s: event %q does not decode: %v", lib, data, err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r3 := make(chan []byte, 16)
	rc := r3sse.NewClient(url)
	go func() {
		_ = rc.SubscribeRawWithContext(ctx, func(m *r3sse.Event) {
			select {
			case r3 <- append([]byte(nil), m.Data...):
			default:
			}
		})
	}()
	gs := make(chan []byte, 16)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	conn := gosse.NewConnection(req)
	conn.SubscribeToAll(func(e gosse.Event) {
		select {
		case gs <- []byte(e.Data):
		default:
		}
	})
	go func() { _ = conn.Connect() }()
	for lib, ch := range map[string]chan []byte{"r3labs/sse": r3, "go-sse": gs} {
		for range 3 {
			select {
			case d := <-ch:
				decode(lib, d)
			case <-ctx.Done():
				t.Fatalf("%s: fewer than 3 events", lib)
			}
		}
	}
}

// Event ids grow across restarts: an id from before a restart is older
// than the new hive's history, so a resuming client is told events were
// lost and gets the latest event, never the new hive's history as if it
// were what it missed.
func TestResumeAcrossRestart(t *testing.T) {
	a := startHive(t, "--telemetry-interval", "100ms")
	sa := openSSE(t, a.httpBase+"/v1/heartbeats/stream")
	var last sseEvent
	for range 3 {
		last = sa.next(t, 5*time.Second)
	}
	sa.cancel()
	if _, err := a.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	oldID, _ := strconv.ParseUint(last.ID, 10, 64)

	b := startHive(t, "--telemetry-interval", "100ms")
	first := openSSE(t, b.httpBase+"/v1/heartbeats/stream").next(t, 5*time.Second)
	if id, _ := strconv.ParseUint(first.ID, 10, 64); id <= oldID {
		t.Fatalf("new hive's id %d is not above the old hive's last id %d", id, oldID)
	}
	// Let the new hive build a history of a few events, then resume.
	sb := openSSE(t, b.httpBase+"/v1/heartbeats/stream")
	for range 3 {
		sb.next(t, 5*time.Second)
	}
	req, _ := http.NewRequest(http.MethodGet, b.httpBase+"/v1/heartbeats/stream", nil)
	req.Header.Set("Last-Event-ID", last.ID)
	resume := openSSEReq(t, req)
	ev := resume.next(t, 5*time.Second)
	if !strings.Contains(strings.Join(ev.Comments, "|"), "older than the history") {
		t.Fatalf("resume with %s: comments %q", last.ID, ev.Comments)
	}
	next := resume.next(t, 5*time.Second)
	a1, _ := strconv.ParseUint(ev.ID, 10, 64)
	a2, _ := strconv.ParseUint(next.ID, 10, 64)
	if a2 != a1+1 {
		t.Fatalf("after the latest event %d came %d: the history was replayed", a1, a2)
	}
}

// `hive watch --once` prints a table with the worker's model, from the
// SSE stream and from NATS.
func TestWatchOnce(t *testing.T) {
	h := startHive(t, "--telemetry-interval", "200ms")
	w := startWorker(t, "--model", "watched-model", "--port", "9377", "--cpu", "0", "--http=false")
	pid := strconv.Itoa(w.Process.Pid)
	bustest.WaitFor(t, 10*time.Second, func() error {
		var out, errOut strings.Builder
		if code := run([]string{"watch", "--url", h.httpBase, "--once"}, &out, &errOut); code != 0 {
			return fmt.Errorf("watch --once: exit %d %s", code, errOut.String())
		}
		if !strings.Contains(out.String(), "watched-model") || !strings.Contains(out.String(), pid) {
			return fmt.Errorf("table without the worker:\n%s", out.String())
		}
		return nil
	})
	var out strings.Builder
	if code := run([]string{"watch", "--nats", h.natsURL, "--once", "--wait", "2s"}, &out, io.Discard); code != 0 ||
		!strings.Contains(out.String(), "watched-model") || !strings.HasPrefix(out.String(), "HIVE") {
		t.Fatalf("watch --nats --once: exit %d\n%s", code, out.String())
	}
}
