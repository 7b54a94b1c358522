package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
)

// Protocol 3.7: the legacy push body, and 3.4: a capabilities device.
var (
	heartbeatKeys  = []string{"hive", "timestamp", "workers", "capabilities"} // and node, additive, after workers
	deviceKeys     = []string{"id", "name", "device_type", "vram_gb", "compute_capability"}
	pushTimestamp  = `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$`
	pushTimeRegexp = mustRegexp(pushTimestamp)
)

// heartbeatWireErr checks a POST /v1/hive-heartbeat body; withCaps says
// whether capabilities must be present (discovery) or absent (push).
func heartbeatWireErr(raw []byte, withCaps bool) error {
	want := slices.Clone(heartbeatKeys[:3])
	// The node block comes from the collector's tick: a discovery attempt
	// before the first one has none yet.
	if keys, _, err := orderedObject(raw); err == nil && slices.Contains(keys, "node") {
		want = append(want, "node")
	}
	if withCaps {
		want = append(want, "capabilities")
	}
	v, err := checkKeys("heartbeat", raw, want)
	if err != nil {
		return err
	}
	if n, ok := v["node"]; ok {
		if err := checkNodeWire(n); err != nil {
			return err
		}
	}
	if _, err := checkHiveInfoWire(v["hive"]); err != nil {
		return err
	}
	var ts string
	_ = json.Unmarshal(v["timestamp"], &ts)
	if !pushTimeRegexp.MatchString(ts) {
		return fmt.Errorf("timestamp %q is not RFC 3339 with Z", ts)
	}
	if err := checkWorkersWire(v["workers"]); err != nil {
		return err
	}
	if !withCaps {
		return nil
	}
	var devs []json.RawMessage
	if err := json.Unmarshal(v["capabilities"], &devs); err != nil || len(devs) == 0 {
		return fmt.Errorf("capabilities %s", v["capabilities"])
	}
	for i, d := range devs {
		dv, err := checkKeys("device", d, deviceKeys)
		if err != nil {
			return err
		}
		last := i == len(devs)-1
		if last != (string(dv["id"]) == `"CPU-0"`) {
			return fmt.Errorf("CPU-0 must be last: %s", v["capabilities"])
		}
		if kindOf(dv["vram_gb"]) != "uint" {
			return fmt.Errorf("vram_gb %s", dv["vram_gb"])
		}
		if last && string(dv["compute_capability"]) != "null" || !last && kindOf(dv["compute_capability"]) != "string" {
			return fmt.Errorf("compute_capability %s", dv["compute_capability"])
		}
	}
	return nil
}

type queenRecorder struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	path string
	body []byte
	at   time.Time
}

func newQueen(t *testing.T) (*queenRecorder, *httptest.Server) {
	q := &queenRecorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		q.mu.Lock()
		q.reqs = append(q.reqs, recorded{r.URL.Path, b, time.Now()})
		q.mu.Unlock()
		fmt.Fprint(w, `{"status":"ok","message":"Telemetry received"}`)
	}))
	t.Cleanup(srv.Close)
	return q, srv
}

func (q *queenRecorder) wait(t *testing.T, n int) []recorded {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		q.mu.Lock()
		got := append([]recorded(nil), q.reqs...)
		q.mu.Unlock()
		if len(got) >= n {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("fewer than %d requests reached the Queen", n)
	return nil
}

func TestDiscoveryThenPushMatchesSSE(t *testing.T) {
	q, srv := newQueen(t)
	w := startWorker(t, "--model", "qwen2", "--port", "9124", "--cpu", "0.2", "--http=false")
	h := startHive(t, "--queen-url", srv.URL+"/", "--telemetry-interval", "300ms")
	sse := openSSE(t, h.httpBase+"/v1/heartbeats/stream")

	reqs := q.wait(t, 6)
	if reqs[0].path != "/v1/hive-heartbeat" {
		t.Fatalf("first request path %q", reqs[0].path)
	}
	if err := heartbeatWireErr(reqs[0].body, true); err != nil {
		t.Fatalf("discovery body: %v\n%s", err, reqs[0].body)
	}
	// Every push whose instant lies inside the window the SSE client saw
	// carries the very workers of the SSE event of that instant.
	type event struct {
		Timestamp string          `json:"timestamp"`
		Workers   json.RawMessage `json:"workers"`
	}
	sseWorkers := map[int64]string{} // by UnixNano: +00:00 and Z parse to different zones
	var first, last time.Time
	for len(sseWorkers) < 10 {
		var v event
		_ = json.Unmarshal([]byte(sse.next(t, 3*time.Second).Data), &v)
		ts, err := time.Parse(time.RFC3339Nano, v.Timestamp)
		if err != nil {
			t.Fatal(err)
		}
		if first.IsZero() {
			first = ts
		}
		last = ts
		sseWorkers[ts.UnixNano()] = string(v.Workers)
	}
	// Wait for the push of the last event the stream saw.
	lastPush := `"timestamp":"` + wire.PushTimestamp(last) + `"`
	bustest.WaitFor(t, 10*time.Second, func() error {
		for _, r := range q.wait(t, 1) {
			if strings.Contains(string(r.body), lastPush) {
				return nil
			}
		}
		return fmt.Errorf("no push of %s yet", lastPush)
	})
	matched, sawWorker := 0, false
	for _, r := range q.wait(t, 8)[1:] {
		if err := heartbeatWireErr(r.body, false); err != nil {
			t.Fatalf("push body: %v\n%s", err, r.body)
		}
		var v event
		_ = json.Unmarshal(r.body, &v)
		ts, err := time.Parse(time.RFC3339Nano, v.Timestamp)
		if err != nil {
			t.Fatal(err)
		}
		if ts.Before(first) || ts.After(last) {
			continue
		}
		sw, ok := sseWorkers[ts.UnixNano()]
		if !ok {
			t.Fatalf("push of %s is no SSE event", v.Timestamp)
		}
		if sw != string(v.Workers) {
			t.Fatalf("push workers %s differ from SSE %s", v.Workers, sw)
		}
		matched++
		sawWorker = sawWorker || strings.Contains(sw, fmt.Sprintf(`"pid":%d,`, w.Process.Pid))
	}
	if matched < 3 || !sawWorker {
		t.Fatalf("only %d pushes fell in the SSE window (worker seen: %v)", matched, sawWorker)
	}
}

func TestCapabilitiesQueenURLStartsDiscovery(t *testing.T) {
	q, srv := newQueen(t)
	h := startHive(t, "--queen-allow", "127.0.0.1") // standalone; the test Queen listens on loopback
	for _, p := range []string{"/capabilities", "/v1/capabilities"} {
		code, body, hdr := httpGet(t, h.httpBase+p)
		if code != 200 || hdr.Get("Content-Type") != "application/json" || !strings.Contains(body, `"id":"CPU-0"`) {
			t.Fatalf("%s: %d %s", p, code, body)
		}
	}
	code, body, _ := httpGet(t, h.httpBase+"/capabilities?queen_url=not-a-url")
	if code != 400 || !strings.Contains(body, `"error":"invalid queen_url`) {
		t.Fatalf("invalid queen_url: %d %s", code, body)
	}
	code, _, _ = httpGet(t, h.httpBase+"/capabilities?queen_url="+url.QueryEscape(srv.URL))
	if code != 200 {
		t.Fatalf("valid queen_url: %d", code)
	}
	reqs := q.wait(t, 1)
	if err := heartbeatWireErr(reqs[0].body, true); err != nil {
		t.Fatalf("discovery body: %v", err)
	}
	// Asked again with the same URL: still one loop (no second
	// discovery). The next two requests are the loop's pushes.
	httpGet(t, h.httpBase+"/capabilities?queen_url="+url.QueryEscape(srv.URL))
	before := len(q.wait(t, 1))
	n := 0
	for _, r := range q.wait(t, before+2) {
		if strings.Contains(string(r.body), `"capabilities"`) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d discovery posts after the same queen_url twice", n)
	}
}

func TestReadyModeCallback(t *testing.T) {
	q, srv := newQueen(t)
	port := freePort(t)
	startHive(t, "--queen-url", srv.URL, "--queen-api", "ready", "--advertise-url", "hive-3.lan", "--port", port,
		"--hive-id", "ready-hive")
	r := q.wait(t, 1)[0]
	want := `{"hive_id":"ready-hive","hive_url":"http://hive-3.lan:` + port + `"}`
	if r.path != "/v1/hive/ready" || string(r.body) != want {
		t.Fatalf("ready callback %s %s, want %s", r.path, r.body, want)
	}
}

// The first discovery attempt finds capabilities answering (they start
// before discovery), so a live Queen gets it at once: attempt 1, with
// capabilities, and no failed attempt in the log. The time from the hive
// answering /health to that POST is logged.
func TestFirstDiscoveryAttemptSucceeds(t *testing.T) {
	for i := range 3 {
		q, srv := newQueen(t)
		h := startHive(t, "--queen-url", srv.URL, "--hive-id", fmt.Sprintf("first-%d", i))
		healthAt := time.Now()
		first := q.wait(t, 1)[0]
		if err := heartbeatWireErr(first.body, true); err != nil {
			t.Fatalf("start %d: first request is not a discovery with capabilities: %v", i, err)
		}
		if h.hasLog("discovery attempt failed") {
			t.Fatalf("start %d: a discovery attempt failed:\n%s", i, h.logText())
		}
		t.Logf("start %d: first POST %v after the hive listened", i, first.at.Sub(healthAt))
	}
}
