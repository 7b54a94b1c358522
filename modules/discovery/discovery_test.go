package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/wait"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// queenReq is one request the fake Queen received.
type queenReq struct {
	Path string
	Body map[string]json.RawMessage
	Raw  []byte
	At   time.Time
}

// fakeQueen records every request; status decides each answer.
type fakeQueen struct {
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []queenReq
	status func(n int, path string) int
}

func newFakeQueen(t *testing.T, status func(n int, path string) int) *fakeQueen {
	q := &fakeQueen{status: status}
	q.srv = httptest.NewServer(http.HandlerFunc(q.serve))
	t.Cleanup(q.srv.Close)
	return q
}

func (q *fakeQueen) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]json.RawMessage
	_ = json.Unmarshal(raw, &body)
	q.mu.Lock()
	q.reqs = append(q.reqs, queenReq{Path: r.URL.Path, Body: body, Raw: raw, At: time.Now()})
	n := len(q.reqs)
	q.mu.Unlock()
	code := 200
	if q.status != nil {
		code = q.status(n, r.URL.Path)
	}
	w.WriteHeader(code)
	fmt.Fprint(w, `{"status":"ok"}`)
}

func (q *fakeQueen) requests() []queenReq {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queenReq(nil), q.reqs...)
}

func (q *fakeQueen) waitN(t *testing.T, n int) []queenReq {
	t.Helper()
	var got []queenReq
	bustest.WaitFor(t, 10*time.Second, func() error {
		if got = q.requests(); len(got) < n {
			return fmt.Errorf("%d of %d requests", len(got), n)
		}
		return nil
	})
	return got
}

type harness struct {
	d   *Discovery
	pub *bus.Conn
	reg *prometheus.Registry // the module's metrics, pedantic
}

var testCaps = wire.Capabilities{Devices: []wire.Device{{ID: "CPU-0", Name: "CPU (2 cores)", DeviceType: "cpu"}}}

// start runs discovery on a real bus with a capabilities responder.
func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	b := bustest.Start(t)
	if cfg.Hive.ID == "" {
		cfg.Hive = wire.HiveInfo{ID: "h1", Hostname: "10.1.1.1", Port: 7835, Version: "test"}
	}
	if cfg.Delays == nil {
		cfg.Delays = []time.Duration{0, 20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond, 160 * time.Millisecond}
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = time.Second
	}
	nc, err := b.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Subscribe(wire.SubjectCapabilitiesGet, func(m *nats.Msg) {
		b, _ := json.Marshal(testCaps)
		_ = m.Respond(b)
	}); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	reg := prometheus.NewPedanticRegistry()
	d, err := New(cfg, b, bustest.Logger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	bustest.RunModule(t, "discovery", d.Run, d.Ready())
	return &harness{d: d, pub: nc, reg: reg}
}

func (h *harness) telemetry(t *testing.T, hiveID string, pids ...uint32) wire.TelemetryEvent {
	t.Helper()
	ev := wire.TelemetryEvent{Type: "telemetry", HiveID: hiveID, Timestamp: "2026-01-02T03:04:05.5+00:00",
		HiveInfo: wire.HiveInfo{ID: hiveID, Hostname: "10.1.1.1", Port: 7835, OperationalStatus: wire.StatusReady, HealthStatus: wire.Healthy, Version: "test"},
		Workers:  []wire.ProcessStats{}}
	for _, p := range pids {
		ev.Workers = append(ev.Workers, wire.ProcessStats{PID: p, Group: "llm", Instance: "9000", CPUPct: 12.5, RSSMB: 100})
	}
	data, _ := json.Marshal(ev)
	m := &nats.Msg{Subject: wire.SubjectTelemetry, Data: data, Header: nats.Header{}}
	m.Header.Set(wire.HeaderHiveID, hiveID)
	if err := h.pub.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	return ev
}

// queenURL asks discovery for a Queen as an authorized gateway request
// would, and returns the reply's status, or its error code.
func (h *harness) queenURL(t *testing.T, u string) string {
	t.Helper()
	return h.askQueen(t, wire.QueenURL{URL: u, Authorized: true})
}

func (h *harness) askQueen(t *testing.T, q wire.QueenURL) string {
	t.Helper()
	b, _ := json.Marshal(q)
	m, err := h.pub.Request(wire.SubjectDiscoveryQueen, b, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var e wire.ErrorReply
	if json.Unmarshal(m.Data, &e) == nil && e.Code != "" {
		return e.Code
	}
	var ok wire.QueenAccepted
	if err := json.Unmarshal(m.Data, &ok); err != nil || ok.Status == "" {
		t.Fatalf("reply %s", m.Data)
	}
	return ok.Status
}

// Attempts wait 0, 2, 4, 8, 16 units (+-10%), then Retry; each carries
// capabilities. The waits the loop asks for are recorded, not measured.
func TestBackoffSchedule(t *testing.T) {
	q := newFakeQueen(t, func(int, string) int { return 500 })
	unit := time.Second
	delays := []time.Duration{0, 2 * unit, 4 * unit, 8 * unit, 16 * unit}
	var mu sync.Mutex
	var waits []time.Duration
	record := func(ctx context.Context, d time.Duration) bool {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return ctx.Err() == nil
	}
	start(t, Config{QueenURL: q.srv.URL, Delays: delays, Jitter: 0.1, Retry: 60 * unit, Sleep: record})
	reqs := q.waitN(t, 7)
	mu.Lock()
	got := append([]time.Duration(nil), waits[:7]...)
	mu.Unlock()
	want := append(append([]time.Duration(nil), delays...), 60*unit, 60*unit)
	for i := range 7 {
		lo, hi := time.Duration(float64(want[i])*0.9), time.Duration(float64(want[i])*1.1)
		if got[i] < lo || got[i] > hi {
			t.Errorf("wait before attempt %d = %v, want %v..%v", i+1, got[i], lo, hi)
		}
	}
	for i, r := range reqs {
		if r.Path != "/v1/hive-heartbeat" || r.Body["capabilities"] == nil {
			t.Errorf("attempt %d: %s %s", i+1, r.Path, r.Raw)
		}
	}
}

func TestGivesUpWhenRetryIsZero(t *testing.T) {
	q := newFakeQueen(t, func(int, string) int { return 503 })
	h := start(t, Config{QueenURL: q.srv.URL})
	q.waitN(t, 5)
	// The loop ends after its fifth attempt: once it has, no sixth can come.
	bustest.WaitFor(t, 5*time.Second, func() error {
		h.d.mu.Lock()
		defer h.d.mu.Unlock()
		if h.d.current != "" || h.d.loops.Load() != 1 {
			return fmt.Errorf("loop still running (loops %d)", h.d.loops.Load())
		}
		return nil
	})
	if n := len(q.requests()); n != 5 {
		t.Fatalf("%d attempts with Retry 0, want 5", n)
	}
}

func TestPushEveryEventAfterDiscovery(t *testing.T) {
	q := newFakeQueen(t, nil)
	h := start(t, Config{QueenURL: q.srv.URL})
	first := q.waitN(t, 1)[0]
	if first.Body["capabilities"] == nil {
		t.Fatalf("discovery without capabilities: %s", first.Raw)
	}
	var hive wire.HiveInfo
	_ = json.Unmarshal(first.Body["hive"], &hive)
	if hive.OperationalStatus != wire.StatusStarting {
		t.Fatalf("before the first tick status %q, want starting", hive.OperationalStatus)
	}
	// Events are sent one at a time so none is superseded.
	for i, pid := range []uint32{11, 12, 13} {
		h.telemetry(t, "h1", pid)
		reqs := q.waitN(t, i+2)
		r := reqs[i+1]
		if r.Body["capabilities"] != nil {
			t.Fatalf("push %d carries capabilities", i)
		}
		var body wire.HiveHeartbeat
		dec := json.NewDecoder(bytes.NewReader(r.Raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			t.Fatal(err)
		}
		if len(body.Workers) != 1 || body.Workers[0].PID != pid || body.Hive.OperationalStatus != wire.StatusReady {
			t.Fatalf("push %d: %s", i, r.Raw)
		}
		if body.Timestamp != "2026-01-02T03:04:05.5Z" {
			t.Fatalf("timestamp %q, want the sample's instant with Z", body.Timestamp)
		}
	}
	// Telemetry of another hive (over a leafnode) is not ours to push.
	// Our next event is handled after it (one publisher, in order): once
	// its push is in, the foreign one would have been pushed before.
	h.telemetry(t, "other", 99)
	h.telemetry(t, "h1", 14)
	reqs := q.waitN(t, 5)
	if n := len(reqs); n != 5 || !strings.Contains(string(reqs[4].Raw), `"pid":14`) {
		t.Fatalf("after a foreign event: %d requests, last %s", n, reqs[len(reqs)-1].Raw)
	}
}

func TestQueenRestartRediscovers(t *testing.T) {
	for _, code := range []int{404, 400} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			// 1: discovery ok; 2: push ok; 3: push gets code; then all ok.
			q := newFakeQueen(t, func(n int, _ string) int {
				if n == 3 {
					return code
				}
				return 200
			})
			h := start(t, Config{QueenURL: q.srv.URL})
			q.waitN(t, 1)
			h.telemetry(t, "h1", 1)
			q.waitN(t, 2)
			h.telemetry(t, "h1", 2)
			reqs := q.waitN(t, 4)
			if reqs[3].Body["capabilities"] == nil {
				t.Fatalf("after %d the next POST must rediscover with capabilities: %s", code, reqs[3].Raw)
			}
			h.telemetry(t, "h1", 3)
			if r := q.waitN(t, 5)[4]; r.Body["capabilities"] != nil {
				t.Fatalf("push after rediscovery carries capabilities")
			}
		})
	}
}

func TestOtherPushFailuresKeepPushing(t *testing.T) {
	q := newFakeQueen(t, func(n int, _ string) int {
		if n == 2 || n == 3 {
			return 500
		}
		return 200
	})
	h := start(t, Config{QueenURL: q.srv.URL})
	q.waitN(t, 1)
	queenState := func(want int32) {
		t.Helper()
		bustest.WaitFor(t, 5*time.Second, func() error {
			if got := h.d.queenState.Load(); got != want {
				return fmt.Errorf("hive_queen_state %d, want %d", got, want)
			}
			return nil
		})
	}
	queenState(queenConnected)
	for i := range 3 {
		h.telemetry(t, "h1", uint32(i))
		q.waitN(t, i+2)
		if i == 0 {
			queenState(queenReaching) // the push got a 500
		}
	}
	queenState(queenConnected)
	for i, r := range q.requests()[1:] {
		if r.Body["capabilities"] != nil {
			t.Fatalf("request %d rediscovered after a 500", i+2)
		}
	}
}

func TestQueenDownThenUp(t *testing.T) {
	// Reserve an address, then leave it closed: connections are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	// Count the waits between attempts: each follows a failed attempt.
	var waits atomic.Int64
	counting := func(ctx context.Context, d time.Duration) bool {
		waits.Add(1)
		return wait.Sleep(ctx, d)
	}
	h := start(t, Config{QueenURL: "http://" + addr, Retry: 50 * time.Millisecond, Sleep: counting})
	bustest.WaitFor(t, 10*time.Second, func() error {
		if n := waits.Load(); n < 3 {
			return fmt.Errorf("%d attempts against a refusing address", n)
		}
		return nil
	})

	q := &fakeQueen{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(q.serve))
	srv.Listener, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("address reused meanwhile: %v", err)
	}
	srv.Start()
	q.srv = srv
	t.Cleanup(srv.Close)
	first := q.waitN(t, 1)[0]
	if first.Body["capabilities"] == nil {
		t.Fatalf("first request to the Queen that came up: %s", first.Raw)
	}
	h.telemetry(t, "h1", 7)
	q.waitN(t, 2)

	// Down again (refused): the next event triggers rediscovery.
	// Ticks go on meanwhile: the push on a dropped keep-alive connection
	// fails with EOF, the next one is refused and triggers rediscovery.
	srv.CloseClientConnections()
	srv.Listener.Close()
	stopTicks := make(chan struct{})
	ticksDone := make(chan struct{})
	go func() {
		defer close(ticksDone)
		for {
			select {
			case <-stopTicks:
				return
			case <-time.After(20 * time.Millisecond):
				h.telemetry(t, "h1", 8)
			}
		}
	}()
	defer func() { close(stopTicks); <-ticksDone }()
	// Rediscovery has begun once discovery waits before an attempt again.
	rediscovering := waits.Load()
	bustest.WaitFor(t, 10*time.Second, func() error {
		if waits.Load() < rediscovering+2 {
			return fmt.Errorf("no rediscovery attempts yet")
		}
		return nil
	})
	q2 := &fakeQueen{}
	srv2 := httptest.NewUnstartedServer(http.HandlerFunc(q2.serve))
	if srv2.Listener, err = net.Listen("tcp", addr); err != nil {
		t.Skipf("address reused meanwhile: %v", err)
	}
	srv2.Start()
	q2.srv = srv2
	t.Cleanup(srv2.Close)
	if r := q2.waitN(t, 1)[0]; r.Body["capabilities"] == nil {
		t.Fatalf("after the Queen came back: %s", r.Raw)
	}
}

func TestStandaloneSendsNothing(t *testing.T) {
	q := newFakeQueen(t, nil)
	h := start(t, Config{})
	// A standalone hive reads no telemetry at all (no decode, no wake-up
	// per tick). Once another subscriber has the event, discovery would
	// have had it too.
	seen, err := h.pub.SubscribeSync(wire.SubjectTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	h.telemetry(t, "h1", 1)
	if _, err := seen.NextMsg(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	h.d.mu.Lock()
	last := h.d.last
	h.d.mu.Unlock()
	if n := len(q.requests()); n != 0 || h.d.loops.Load() != 0 || h.d.queenState.Load() != queenNone || last != nil {
		t.Fatalf("standalone: %d requests, %d loops, hive_queen_state %d, telemetry read %v", n, h.d.loops.Load(), h.d.queenState.Load(), last != nil)
	}
	// A Queen allowed later (a reload) starts the telemetry it pushes.
	if err := h.d.SetQueenAllow("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if got := h.queenURL(t, q.srv.URL); got != "started" {
		t.Fatalf("queen_url after the allow-list named it: %s", got)
	}
	q.waitN(t, 1)
	bustest.WaitFor(t, 5*time.Second, func() error {
		h.telemetry(t, "h1", 2)
		for _, r := range q.requests()[1:] {
			if strings.Contains(string(r.Raw), `"pid":2`) {
				return nil
			}
		}
		return fmt.Errorf("no push of the event after the Queen came: %d requests", len(q.requests()))
	})
}

func TestQueenURLStartsReplacesNeverDuplicates(t *testing.T) {
	a := newFakeQueen(t, nil)
	b := newFakeQueen(t, nil)
	h := start(t, Config{QueenAllow: "127.0.0.0/8"})
	for _, bad := range []string{"not a url", "ftp://x/"} {
		if got := h.queenURL(t, bad); got != wire.CodeInvalid {
			t.Errorf("queen %q: %s", bad, got)
		}
	}
	if got := h.queenURL(t, a.srv.URL+"/"); got != "started" { // trailing slash: joined without "//"
		t.Fatalf("first Queen: %s", got)
	}
	if r := a.waitN(t, 1)[0]; r.Path != "/v1/hive-heartbeat" {
		t.Fatalf("path %q", r.Path)
	}
	if got := h.queenURL(t, a.srv.URL+"/"); got != "unchanged" {
		t.Fatalf("same Queen again: %s", got)
	}
	h.telemetry(t, "h1", 1)
	a.waitN(t, 2)
	if n := h.d.loops.Load(); n != 1 {
		t.Fatalf("%d loops after the same URL twice", n)
	}
	h.queenURL(t, b.srv.URL)
	if r := b.waitN(t, 1)[0]; r.Body["capabilities"] == nil {
		t.Fatalf("new Queen's first request %s", r.Raw)
	}
	if n := h.d.loops.Load(); n != 2 {
		t.Fatalf("%d loops after a new URL", n)
	}
	before := len(a.requests())
	h.telemetry(t, "h1", 2)
	b.waitN(t, 2)
	if after := len(a.requests()); after != before {
		t.Fatalf("the replaced loop still pushes to the old Queen (%d -> %d)", before, after)
	}
}

func TestReadyModeBody(t *testing.T) {
	q := newFakeQueen(t, func(n int, _ string) int {
		if n == 1 {
			return 502
		}
		return 200
	})
	h := start(t, Config{QueenURL: q.srv.URL, API: APIReady, AdvertiseURL: "http://hive-7.example:7835"})
	reqs := q.waitN(t, 2)
	for _, r := range reqs {
		if r.Path != "/v1/hive/ready" || string(r.Raw) != `{"hive_id":"h1","hive_url":"http://hive-7.example:7835"}` {
			t.Fatalf("ready request %s %s", r.Path, r.Raw)
		}
	}
	// Ready mode ends its loop after the acknowledgement; once it has, a
	// telemetry event has nobody to push it.
	bustest.WaitFor(t, 5*time.Second, func() error {
		h.d.mu.Lock()
		defer h.d.mu.Unlock()
		if h.d.current != "" {
			return fmt.Errorf("ready loop still running")
		}
		return nil
	})
	h.telemetry(t, "h1", 1)
	if n := len(q.requests()); n != 2 {
		t.Fatalf("%d requests; ready mode must not push", n)
	}
	// The Queen asks again (it restarted): a finished loop may run again.
	h.queenURL(t, q.srv.URL)
	q.waitN(t, 3)
}

func TestHiveURLAdvertised(t *testing.T) {
	if got := HiveURL("http://127.0.0.1:7833", "", "", 7835, false); got != "http://127.0.0.1:7835" {
		t.Errorf("loopback Queen: %s", got)
	}
	if got := HiveURL("http://q:7833", "", "10.9.8.7", 7835, true); got != "https://10.9.8.7:7835" {
		t.Errorf("a TLS hive advertises %q", got)
	}
	if got := HiveURL("http://q:7833", "", "10.9.8.7", 7835, false); got != "http://10.9.8.7:7835" {
		t.Errorf("advertise host: %s", got)
	}
	if got := HiveURL("http://q:7833", "https://hive.example", "x", 7835, true); got != "https://hive.example" {
		t.Errorf("advertise url: %s", got)
	}
	// A Queen off the loopback (here: this host's own interface address,
	// so no test traffic leaves the machine) gets a non-loopback address.
	own := firstInterfaceAddr()
	if own == "127.0.0.1" {
		t.Skip("no non-loopback interface")
	}
	if got := AdvertiseHost("http://"+own+":7833", "", ""); strings.HasPrefix(got, "127.") || got == "" {
		t.Errorf("non-local Queen advertised %s", got)
	}
}

func TestNewValidates(t *testing.T) {
	b := bustest.Start(t)
	good := Config{Hive: wire.HiveInfo{ID: "h"}}
	for name, mut := range map[string]func(*Config){
		"api":    func(c *Config) { c.API = "pull" },
		"url":    func(c *Config) { c.QueenURL = "localhost:7833" },
		"id":     func(c *Config) { c.Hive.ID = "" },
		"jitter": func(c *Config) { c.Jitter = 1.5 },
		"retry":  func(c *Config) { c.Retry = -1 },
	} {
		c := good
		mut(&c)
		if _, err := New(c, b, nil, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
