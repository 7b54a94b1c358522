package main

// The engines' load (issue 31), from the real binary: fake engines serve
// each engine's page as its code prints it (internal/engine/testdata), a
// process named like a worker carries each one's port, and the hive reads
// them.

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/engine/enginetest"
)

// engineWorker is a fake engine on its own port and a process whose
// command line names that port, as a worker's does.
type engineWorker struct {
	*enginetest.Engine
	pid, port int
}

// startEngineWorker serves e and starts `sh -c 'sleep 600' <tag>-<name>
// --model <name> --port <port>`, matched by the hive's cmdline:<tag>.
func startEngineWorker(t *testing.T, tag, name string, e *enginetest.Engine) *engineWorker {
	t.Helper()
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	cmd := exec.Command("sh", "-c", "sleep 600", tag+"-"+name, "--model", name, "--port", fmt.Sprint(port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	return &engineWorker{Engine: e, pid: cmd.Process.Pid, port: port}
}

func fixturePage(t *testing.T, name string) *enginetest.Engine {
	t.Helper()
	page, err := enginetest.Fixture(name)
	if err != nil {
		t.Fatal(err)
	}
	return enginetest.New(page)
}

// engineTag is a command-line tag no other test's processes carry.
func engineTag(t *testing.T) string {
	return fmt.Sprintf("llm-worker-eng%d%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", ""))
}

func u(v uint64) *uint64 { return &v }

// Every engine's page, as its code prints it, becomes the same load
// block: the figures the engine served, absent where it has none, rates
// within 2 % of the true ones over 5 s; the Queen's strict decode passes.
func TestEngineLoadFromEachEngine(t *testing.T) {
	tag := engineTag(t)
	type want struct {
		engine                            string
		queue, running, kvUsed, kvCap, pr *uint64
		kv                                *float64
		gen                               float64 // true tokens/s, 0: none
	}
	kv := func(v float64) *float64 { return &v }
	cases := map[string]struct {
		file string
		set  map[string]float64
		gen  float64
		slot string
		want want
	}{
		"vllm-0.10": {"vllm-0.10.txt", map[string]float64{"queue": 12, "running": 8, "kv": 0.83, "kvcap": 524288, "blocks": 32768, "preempt": 3}, 412, "",
			want{engine: "vllm", queue: u(12), running: u(8), kvCap: u(524288), pr: u(3), kv: kv(0.83), gen: 412}},
		"vllm-0.8": {"vllm-0.8.txt", map[string]float64{"queue": 2, "running": 1, "kv": 0.5, "blocks": 1000}, 100, "",
			want{engine: "vllm", queue: u(2), running: u(1), kvCap: u(16000), pr: u(0), kv: kv(0.5), gen: 100}},
		"vllm-dp2": {"vllm-0.10-dp2.txt", map[string]float64{"queue.0": 3, "queue.1": 5, "running.0": 4, "running.1": 6, "kv.0": 0.2, "kv.1": 0.6, "kvcap.0": 1000, "kvcap.1": 3000}, 250, "",
			want{engine: "vllm", queue: u(8), running: u(10), kvCap: u(4000), pr: u(0), kv: kv(0.4), gen: 500}}, // two engines at 250
		"sglang": {"sglang.txt", map[string]float64{"queue": 7, "running": 5, "kv": 0.25, "kvused": 36000, "kvcap": 144000}, 300, "",
			want{engine: "sglang", queue: u(7), running: u(5), kvUsed: u(36000), kvCap: u(144000), kv: kv(0.25), gen: 300}},
		"llamacpp": {"llamacpp.txt", map[string]float64{"queue": 1, "running": 4}, 50, "",
			want{engine: "llamacpp", queue: u(1), running: u(4), gen: 50}},
		"llamacpp-slots": {"llamacpp.txt", nil, 0, "llamacpp-slots.json",
			want{engine: "llamacpp", running: u(1), kvCap: u(8192)}},
		"tgi": {"tgi.txt", map[string]float64{"queue": 9, "running": 32, "kvused": 20480}, 0, "",
			want{engine: "tgi", queue: u(9), running: u(32), kvUsed: u(20480)}},
	}
	workers := map[int]string{}
	for name, c := range cases {
		e := fixturePage(t, c.file)
		for k, v := range c.set {
			e.Set(k, v)
		}
		if c.gen > 0 {
			e.Grow("gen", c.gen)
		}
		if c.slot != "" {
			slots, err := enginetest.Fixture(c.slot)
			if err != nil {
				t.Fatal(err)
			}
			e.Slots, e.MetricsStatus = slots, http.StatusNotImplemented // llama.cpp without --metrics
		}
		workers[startEngineWorker(t, tag, name, e).pid] = name
	}
	h := startHiveEnv(t, []string{"HIVE_ENGINE_INTERVAL=500ms"}, "--worker-match", "cmdline:"+tag, "--telemetry-interval", "500ms")
	sse := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
	next := func() wire.TelemetryEvent {
		data := sse.next(t, 10*time.Second).Data
		if err := telemetryWireErr(data); err != nil {
			t.Fatalf("the Queen's wire: %v\n%s", err, data)
		}
		return decodeStrict(t, data)
	}
	// Until every worker has its load and its rates.
	deadline := time.Now().Add(30 * time.Second)
	for ready := false; !ready; {
		if time.Now().After(deadline) {
			t.Fatal("not every worker has its load within 30 s")
		}
		ready = true
		n := 0
		for _, w := range next().Workers {
			name, ok := workers[int(w.PID)]
			if !ok {
				continue
			}
			n++
			if w.Load == nil || cases[name].gen > 0 && w.Load.GenTPS == nil {
				ready = false
			}
		}
		ready = ready && n == len(cases)
	}
	gens := map[string][]float64{}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		for _, w := range next().Workers {
			name, ok := workers[int(w.PID)]
			if !ok {
				continue
			}
			l, c := w.Load, cases[name].want
			if l == nil {
				t.Fatalf("%s lost its load", name)
			}
			check := func(what string, got, want *uint64) {
				if (got == nil) != (want == nil) || got != nil && *got != *want {
					t.Errorf("%s %s: %v, want %v", name, what, fmtPtr(got), fmtPtr(want))
				}
			}
			check("queue", l.Queue, c.queue)
			check("running", l.Running, c.running)
			check("kv_used_tokens", l.KVUsedTokens, c.kvUsed)
			check("kv_capacity_tokens", l.KVCapacityTokens, c.kvCap)
			check("preemptions", l.Preemptions, c.pr)
			if l.Engine != c.engine || (l.KVUsedRatio == nil) != (c.kv == nil) || c.kv != nil && math.Abs(float64(*l.KVUsedRatio)-*c.kv) > 1e-9 {
				t.Errorf("%s: engine %q kv %v, want %q %v", name, l.Engine, fmtPtr(l.KVUsedRatio), c.engine, fmtPtr(c.kv))
			}
			if c.gen == 0 && l.GenTPS != nil {
				t.Errorf("%s: gen_tps %v from an engine without a generation counter", name, *l.GenTPS)
			}
			if l.GenTPS != nil {
				gens[name] = append(gens[name], float64(*l.GenTPS))
			}
		}
	}
	for name, c := range cases {
		if c.want.gen == 0 {
			continue
		}
		var sum float64
		for _, g := range gens[name] {
			sum += g
		}
		if mean := sum / float64(len(gens[name])); math.Abs(mean-c.want.gen) > 0.02*c.want.gen {
			t.Errorf("%s: gen_tps %.1f over 5 s (%v), true rate %v", name, mean, gens[name], c.want.gen)
		}
	}
	_, metrics, _ := httpGet(t, h.httpBase+"/metrics")
	for _, want := range []string{"hive_worker_queue{", "hive_worker_running{", "hive_worker_kv_used_ratio{", "hive_worker_generation_tokens_per_second{"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// A worker whose engine has requests running and makes no progress is
// stalled within stall-after + 2 s, and ready again once it moves; idle,
// queue-only and moving engines are never stalled (HIVE_E2E_STALL_SOAK
// runs the not-stalled part longer, e.g. 10m).
func TestEngineStalled(t *testing.T) {
	tag := engineTag(t)
	page := func(set map[string]float64) *enginetest.Engine {
		e := fixturePage(t, "vllm-0.10.txt")
		for k, v := range set {
			e.Set(k, v)
		}
		return e
	}
	stuck := startEngineWorker(t, tag, "stuck", page(map[string]float64{"running": 2, "gen": 1000, "prompt": 5000}))
	idle := startEngineWorker(t, tag, "idle", page(map[string]float64{"running": 0, "queue": 0}))
	queued := startEngineWorker(t, tag, "queued", page(map[string]float64{"running": 0, "queue": 40}))
	moving := startEngineWorker(t, tag, "moving", page(map[string]float64{"running": 8}))
	moving.Grow("gen", 200)
	const stallAfter = 2 * time.Second
	h := startHiveEnv(t, []string{"HIVE_ENGINE_INTERVAL=200ms", "HIVE_STALL_AFTER=" + stallAfter.String()},
		"--worker-match", "cmdline:"+tag, "--telemetry-interval", "250ms")
	sse := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
	never := map[int]string{idle.pid: "idle", queued.pid: "queue-only", moving.pid: "moving"}
	watch := func(until func(ev wire.TelemetryEvent) bool, d time.Duration) bool {
		for end := time.Now().Add(d); time.Now().Before(end); {
			ev := decodeStrict(t, sse.next(t, 10*time.Second).Data)
			for _, w := range ev.Workers {
				if what, ok := never[int(w.PID)]; ok && w.State == wire.WorkerStalled {
					t.Fatalf("the %s engine is stalled", what)
				}
			}
			if until(ev) {
				return true
			}
		}
		return false
	}
	stateOf := func(ev wire.TelemetryEvent, pid int) (string, bool) {
		w, ok := workerOf(ev, pid)
		return w.State, ok && w.Load != nil
	}
	var firstLoad time.Time
	if !watch(func(ev wire.TelemetryEvent) bool { _, ok := stateOf(ev, stuck.pid); return ok }, 20*time.Second) {
		t.Fatal("no load for the stuck engine")
	}
	firstLoad = time.Now()
	if !watch(func(ev wire.TelemetryEvent) bool { s, _ := stateOf(ev, stuck.pid); return s == wire.WorkerStalled }, stallAfter+10*time.Second) {
		t.Fatal("the stuck engine is never stalled")
	}
	if took := time.Since(firstLoad); took > stallAfter+2*time.Second {
		t.Errorf("stalled %v after its first load, want within stall-after + 2 s", took.Round(time.Millisecond))
	}
	stuck.Grow("gen", 50)
	if !watch(func(ev wire.TelemetryEvent) bool { s, _ := stateOf(ev, stuck.pid); return s == wire.WorkerReady }, 10*time.Second) {
		t.Fatal("the engine moves again and is still stalled")
	}
	soak := 10 * time.Second
	if d, err := time.ParseDuration(os.Getenv("HIVE_E2E_STALL_SOAK")); err == nil {
		soak = d
	}
	watch(func(wire.TelemetryEvent) bool { return false }, soak)
	_, metrics, _ := httpGet(t, h.httpBase+"/metrics")
	if !regexp.MustCompile(`(?m)^hive_worker_state_changes_total\{[^}]*state="stalled"\} 1$`).MatchString(metrics) {
		t.Errorf("the stall is not counted once:\n%s", grepLines(metrics, "hive_worker"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A queue burst reaches a ?events=load stream right after the engine's
// next read, well before the next tick; a stream that did not ask gets
// no load event. Bound: p99 of (arrival - the read that saw the change)
// within max(200 ms, twice the same hive's p99 from tick to heartbeat).
func TestEngineLoadBurstReachesLoadStream(t *testing.T) {
	tag := engineTag(t)
	e := fixturePage(t, "vllm-0.10.txt")
	w := startEngineWorker(t, tag, "burst", e)
	h := startHiveEnv(t, []string{"HIVE_ENGINE_INTERVAL=100ms"}, "--worker-match", "cmdline:"+tag, "--telemetry-interval", "1s")
	live := openSSE(t, h.httpBase+"/v1/heartbeats/stream?events=load")
	plain := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
	// The burst starts from a load the hive has seen.
	for seen := false; !seen; {
		ev := live.next(t, 20*time.Second)
		if ev.Event == "heartbeat" {
			wk, ok := workerOf(decodeStrict(t, ev.Data), w.pid)
			seen = ok && wk.Load != nil && wk.Load.Queue != nil
		}
	}
	var loadLat, beatLat []time.Duration
	for i := range 20 {
		q := float64(40 * ((i + 1) % 2))
		changed := time.Now()
		e.Set("queue", q)
		for deadline := time.Now().Add(10 * time.Second); ; {
			if time.Now().After(deadline) {
				t.Fatalf("burst %d: no load event with queue %v within 10 s", i, q)
			}
			ev := live.next(t, 10*time.Second)
			if ev.Event == "heartbeat" {
				hb := decodeStrict(t, ev.Data)
				if ts, err := time.Parse(time.RFC3339Nano, hb.Timestamp); err == nil {
					beatLat = append(beatLat, ev.At.Sub(ts))
				}
				continue
			}
			if ev.Event != "load" || ev.ID != "" {
				t.Fatalf("event %q id %q: want load events without an id", ev.Event, ev.ID)
			}
			var le wire.LoadEvent
			if err := jsonStrict(ev.Data, &le); err != nil {
				t.Fatalf("load event %s: %v", ev.Data, err)
			}
			if len(le.Workers) == 1 && int(le.Workers[0].PID) == w.pid && le.Workers[0].Load.Queue != nil && float64(*le.Workers[0].Load.Queue) == q {
				read, ok := e.FirstReadAfter(changed)
				if !ok {
					t.Fatal("a load event before the engine was read")
				}
				loadLat = append(loadLat, ev.At.Sub(read))
				break
			}
		}
	}
	// The control: the same hive's heartbeats, tick to arrival, on a
	// stream that did not ask for load events and gets none.
	for len(beatLat) < 5 {
		ev := plain.next(t, 10*time.Second)
		if ev.Event == "load" {
			t.Fatal("a stream that did not ask got a load event")
		}
		hb := decodeStrict(t, ev.Data)
		if ts, err := time.Parse(time.RFC3339Nano, hb.Timestamp); err == nil {
			beatLat = append(beatLat, ev.At.Sub(ts))
		}
	}
	p99 := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[min(len(d)-1, len(d)*99/100)]
	}
	bound := max(200*time.Millisecond, 2*p99(beatLat))
	if got := p99(loadLat); got > bound {
		t.Errorf("load events p99 %v after the engine's read (all: %v), bound %v", got, loadLat, bound)
	}
	t.Logf("load events: p99 %v after the engine's read; heartbeats: p99 %v after the tick", p99(loadLat), p99(beatLat))
}

func jsonStrict(data string, v any) error {
	dec := json.NewDecoder(strings.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// Hostile and broken engines, beside a good one: a 50 MB page, 10,000
// families, label values with escape bytes, a slow drip, one that never
// answers, garbage, a redirect, a counter that resets. The hive's memory
// stays within its bounds, its ticks keep their pace, the good engine
// keeps its load, nothing unescaped reaches hive watch or /metrics, and
// each failure is counted by reason.
func TestEngineHostileEngines(t *testing.T) {
	tag := engineTag(t)
	good := startEngineWorker(t, tag, "good", fixturePage(t, "vllm-0.10.txt"))
	good.Set("queue", 3)
	good.Grow("gen", 100)
	handler := func(h http.HandlerFunc) *enginetest.Engine {
		e := enginetest.New("")
		e.Handler = h
		return e
	}
	big := enginetest.Big(50 << 20)
	startEngineWorker(t, tag, "big", handler(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(big) }))
	var families strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&families, "# HELP f%d x\n# TYPE f%d gauge\nf%d{l=\"%d\"} 1\n", i, i, i, i)
	}
	families.WriteString("vllm:num_requests_waiting{model_name=\"\x1b]0;owned\x07\\\"\\n\",engine=\"0\"} 5\n")
	escapes := startEngineWorker(t, tag, "families", handler(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(families.String())) }))
	startEngineWorker(t, tag, "drip", handler(func(w http.ResponseWriter, r *http.Request) {
		for range 100 {
			if _, err := w.Write([]byte("v")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	}))
	startEngineWorker(t, tag, "silent", handler(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	startEngineWorker(t, tag, "garbage", handler(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("\x00\xff<html>\x1b[2J not metrics {{{ \n"))
	}))
	var followed atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Add(1) }))
	t.Cleanup(elsewhere.Close)
	startEngineWorker(t, tag, "redirect", handler(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/metrics", http.StatusFound)
	}))
	reset := startEngineWorker(t, tag, "reset", fixturePage(t, "vllm-0.10.txt"))
	reset.Set("gen", 1e6)
	reset.Grow("gen", 200)

	h := startHiveEnv(t, []string{"HIVE_ENGINE_INTERVAL=200ms"}, "--worker-match", "cmdline:"+tag, "--telemetry-interval", "250ms")
	rss0 := rssBytes(t, h.cmd.Process.Pid)
	sse := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
	start := time.Now()
	var events int
	var resetSeen, escapesSeen, goodSeen bool
	for time.Since(start) < 8*time.Second {
		ev := decodeStrict(t, sse.next(t, 10*time.Second).Data)
		events++
		if events == 12 {
			reset.Set("gen", 10) // the engine restarted
			reset.Grow("gen", 200)
		}
		for _, w := range ev.Workers {
			l := w.Load
			switch {
			case l == nil:
			case int(w.PID) == good.pid:
				goodSeen = goodSeen || l.Queue != nil && *l.Queue == 3
			case int(w.PID) == escapes.pid:
				escapesSeen = escapesSeen || l.Queue != nil && *l.Queue == 5
			case int(w.PID) == reset.pid && l.GenTPS != nil:
				if *l.GenTPS < 0 {
					t.Fatalf("gen_tps %v after a counter reset", *l.GenTPS)
				}
				resetSeen = resetSeen || events > 14
			}
		}
	}
	if !goodSeen || !escapesSeen || !resetSeen {
		t.Errorf("load seen: good %v, 10,000 families with escapes %v, after a reset %v", goodSeen, escapesSeen, resetSeen)
	}
	// 8 s at 250 ms: 32 ticks; the hive misses none of them waiting on an
	// engine (each read is on the prober's goroutine, never the tick's).
	if events < 28 {
		t.Errorf("%d events in 8 s at a 250 ms tick: the engines held the tick up", events)
	}
	grown := rssBytes(t, h.cmd.Process.Pid) - rss0
	t.Logf("%d events in 8 s; the hive's RSS grew %d KiB", events, grown>>10)
	if grown > 40<<20 {
		t.Errorf("the hive's RSS grew %d MiB reading hostile engines", grown>>20)
	}
	if n := followed.Load(); n != 0 {
		t.Errorf("a redirect was followed %d times", n)
	}
	_, metrics, _ := httpGet(t, h.httpBase+"/metrics")
	for _, want := range []string{`reason="timeout"`, `reason="status"`, `reason="no_engine"`, "hive_engine_pages_cut_total"} {
		if !strings.Contains(grepLines(metrics, "hive_engine_"), want) {
			t.Errorf("/metrics: no %s in\n%s", want, grepLines(metrics, "hive_engine_"))
		}
	}
	out, err := runHive(t, nil, "watch", "--once", "--url", h.httpBase)
	if err != nil {
		t.Fatalf("hive watch: %v\n%s", err, out)
	}
	for what, text := range map[string]string{"hive watch": out, "/metrics": metrics} {
		if strings.ContainsAny(text, "\x1b\x07\x00") {
			t.Errorf("%s carries a control byte", what)
		}
	}
}

// The dashboard shows a worker's engine load (queue, running, KV,
// tokens/s) and the tokens/s of all engines.
func TestDashboardShowsEngineLoad(t *testing.T) {
	browser(t)
	tag := engineTag(t)
	e := fixturePage(t, "vllm-0.10.txt")
	e.Set("queue", 17)
	e.Set("running", 6)
	e.Set("kv", 0.42)
	e.Grow("gen", 321)
	startEngineWorker(t, tag, "dash", e)
	h := startHiveEnv(t, []string{"HIVE_ENGINE_INTERVAL=250ms"}, "--worker-match", "cmdline:"+tag, "--telemetry-interval", "250ms")
	ctx := newBrowser(t, 1280, 900, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(h.httpBase+"/"), chromedp.WaitReady(chromedp.CSS("#rows"))); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	pageText(t, ctx, "the engine's load", 20*time.Second, func(s string) bool {
		// 321 tokens/s, within 2 %
		return regexp.MustCompile(`17\t6\t42 %\t3(1[5-9]|2\d|3[0-7])\t`).MatchString(s) && strings.Contains(s, "Tokens/s")
	})
}
