package main

// One test per attack of the second security round (issue 20), each
// against the real binary on loopback, with a legitimate client watched
// meanwhile. SECURITY.md names them.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/client"
	"github.com/rbee/hive/internal/hubcluster"
)

// Attack 6a: with --access open, a page whose name resolves to the hive
// (Host: evil.example, same-origin to itself) could shut the hive down.
// Now refused in every mode; the Queen's stream and a loopback client that
// addresses the hive by IP keep working.
func TestAttackRebindingInOpenMode(t *testing.T) {
	h := startHive(t, "--access", "open")
	sse := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
	sse.next(t, 10*time.Second)
	u, _ := url.Parse(h.httpBase)
	_, port, _ := strings.Cut(u.Host, ":")
	evil := map[string]string{"Host": "evil.example:" + port, "Origin": "http://evil.example:" + port,
		"Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
	code, body, _ := do(t, "POST", h.httpBase+"/v1/shutdown", evil, "{}")
	if code != 403 || !isJSONError(body) || !strings.Contains(body, "DNS rebinding") {
		t.Fatalf("rebinding shutdown: %d %s, want 403", code, body)
	}
	if code, body, _ := do(t, "POST", h.httpBase+"/v1/jobs", map[string]string{"Content-Type": "application/json"},
		`{"operation":"model_list","hive_id":"x"}`); code != 200 {
		t.Errorf("loopback job by IP: %d %s", code, body)
	}
	select {
	case <-h.exited:
		t.Fatal("the hive exited")
	default:
	}
	sse.next(t, 10*time.Second)
}

// Attack 6b and 6c: a queen_url whose port no socket has is a 400 that
// spends no Queen change; HEAD / and HEAD /health answer like GET.
func TestAttackSmallOnesRoundTwo(t *testing.T) {
	h := startHiveEnv(t, []string{"HIVE_API_TOKEN=" + e2eToken}, "--queen-allow", "127.0.0.1")
	auth := map[string]string{"Authorization": "Bearer " + e2eToken}
	for _, q := range []string{"http://127.0.0.1:0", "http://127.0.0.1:65536", "http://127.0.0.1:99999"} {
		code, body, _ := do(t, "GET", h.httpBase+"/capabilities?queen_url="+url.QueryEscape(q), auth, "")
		if code != 400 || !strings.Contains(body, "port") {
			t.Errorf("queen_url %s: %d %s, want 400", q, code, body)
		}
	}
	// The refused ones spent nothing: the change budget still has its
	// whole burst for a good URL.
	queen := newCounter(t, new(atomic.Int64))
	code, body, _ := do(t, "GET", h.httpBase+"/capabilities?queen_url="+url.QueryEscape(queen), auth, "")
	if code != 200 {
		t.Errorf("good queen_url after the bad ones: %d %s", code, body)
	}
	for _, p := range []string{"/", "/health"} {
		code, body, hdr := do(t, "HEAD", h.httpBase+p, nil, "")
		if code != 200 || body != "" || hdr.Get("Content-Type") == "" {
			t.Errorf("HEAD %s: %d %q %q", p, code, body, hdr.Get("Content-Type"))
		}
	}
}

// Attack 2: an anonymous hub client floods durable consumers, listens on
// _INBOX.> and deletes others' consumers. Now it can do none of that, and
// an anonymous history read (direct get, no consumer) still succeeds, as
// does `hive watch --history`; the named reader has its four consumers and
// no fifth.
func TestAttackAnonymousHubClientsCannotBreakHistory(t *testing.T) {
	cl := startHubCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, admin, err := cl.CreateStream(ctx, "../../deployments/hub-stream.json")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	startHiveEnv(t, cl.HiveEnv(), "--hive-id", "hist-a")
	ajs, _ := jetstream.New(admin)
	if _, err := ajs.CreateOrUpdateConsumer(ctx, client.HistoryStream, jetstream.ConsumerConfig{Durable: "keep"}); err != nil {
		t.Fatal(err)
	}
	bustest.WaitFor(t, 20*time.Second, func() error {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter("hive.telemetry.hist-a"))
		if err != nil || info.State.Subjects["hive.telemetry.hist-a"] < 3 {
			return fmt.Errorf("hist-a not kept yet: %v", err)
		}
		return nil
	})

	var violations atomic.Int64
	anon, err := nats.Connect(cl.ClientURL(0), cl.TLS(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if strings.Contains(err.Error(), "Permissions Violation") {
			violations.Add(1)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	// The flood: 130 durables in a second, both API forms.
	for i := range 130 {
		cfg := fmt.Sprintf(`{"stream_name":%q,"config":{"durable_name":"d%d","inactive_threshold":31536000000000000}}`, client.HistoryStream, i)
		_ = anon.Publish(fmt.Sprintf("$JS.API.CONSUMER.DURABLE.CREATE.%s.d%d", client.HistoryStream, i), []byte(cfg))
		_ = anon.Publish(fmt.Sprintf("$JS.API.CONSUMER.CREATE.%s.d%d", client.HistoryStream, i), []byte(cfg))
		_ = anon.Publish(fmt.Sprintf("$JS.API.CONSUMER.CREATE.%s", client.HistoryStream), []byte(cfg))
	}
	_ = anon.Publish("$JS.API.CONSUMER.DELETE."+client.HistoryStream+".keep", nil)
	var snooped atomic.Int64
	_, _ = anon.Subscribe("_INBOX.>", func(*nats.Msg) { snooped.Add(1) })
	_ = anon.Flush()
	bustest.WaitFor(t, 10*time.Second, func() error {
		if n := violations.Load(); n < 4 {
			return fmt.Errorf("%d permission violations reported", n)
		}
		return nil
	})
	// The admin's own requests reply on _INBOX.>: none reaches the snoop.
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := 1 + len(hubcluster.ReaderConsumers); info.State.Consumers != want {
		t.Errorf("stream has %d consumers after the flood, want only the admin's %d", info.State.Consumers, want)
	}
	if _, err := ajs.Consumer(ctx, client.HistoryStream, "keep"); err != nil {
		t.Errorf("the admin's consumer: %v", err)
	}
	if n := snooped.Load(); n != 0 {
		t.Errorf("an anonymous client read %d replies on _INBOX.>", n)
	}

	// The legitimate anonymous reader still reads the whole history.
	var got []client.Event
	h := client.History{URL: cl.ClientURLs(), Options: []nats.Option{cl.TLS()}}
	if err := h.Since(ctx, "hist-a", time.Now().Add(-time.Hour), func(e client.Event) { got = append(got, e) }); err != nil || len(got) < 3 {
		t.Fatalf("history read after the flood: %d events, %v", len(got), err)
	}
	for i, e := range got {
		if e.Telemetry.HiveID != "hist-a" || (i > 0 && e.ID <= got[i-1].ID) {
			t.Fatalf("event %d: hive %q id %d after %d", i, e.Telemetry.HiveID, e.ID, got[max(i-1, 0)].ID)
		}
	}
	out, err := exec.CommandContext(ctx, hiveBin, "watch", "--nats", cl.ClientURL(0), "--ca-file", cl.CAFile, "--hive", "hist-a", "--history", "1h").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"hive_id":"hist-a"`) {
		t.Fatalf("hive watch --history: %v\n%s", err, out)
	}

	// The named reader's four consumers are the admin's: it cannot make
	// a fifth (TestAttackHubRepliesForgeNothing has the rest).
	rd, err := nats.Connect(cl.ClientURL(0), cl.TLS(), nats.UserInfo("reader", hubReaderPassword), nats.CustomInboxPrefix("_READER"))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	rjs, _ := jetstream.New(rd)
	cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
	defer ccancel()
	if _, err := rjs.CreateConsumer(cctx, client.HistoryStream, jetstream.ConsumerConfig{Name: "reader-5", InactiveThreshold: time.Minute}); err == nil {
		t.Error("the reader made a fifth consumer")
	}
}

// Attack 3 and 4: ten local processes whose --model is 100 KB of terminal
// escapes and filler. The event stays small and reaches SSE and NATS each
// tick, the model is cut and printable, nothing is refused on the bus, and
// no terminal escape reaches hive watch, the job narration or /metrics.
// A hundred other processes with 1.5 MB of arguments each leave the
// heap as it was.
func TestAttackHugeAndHostileWorkerNames(t *testing.T) {
	h := startHive(t, "--worker-dir", binDir, "--model-dir", t.TempDir(), "--worker-log-dir", t.TempDir())
	hostile := "\x1b]0;owned\a\x1b[2J\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\\r\n\u009b31m\u202e"
	model := hostile + strings.Repeat("m", 100<<10)
	ours := map[uint32]bool{}
	for range 10 {
		ours[uint32(startWorker(t, "--model", model, "--cpu", "0", "--mem-mib", "1", "--http=false").Process.Pid)] = true
	}
	var natsEvents, natsWithWorkers atomic.Int64
	nc, err := nats.Connect(h.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Subscribe(wire.SubjectTelemetry, func(m *nats.Msg) {
		natsEvents.Add(1)
		var ev wire.TelemetryEvent
		n := 0
		if json.Unmarshal(m.Data, &ev) == nil {
			for _, w := range ev.Workers {
				if ours[w.PID] {
					n++
				}
			}
		}
		if n == 10 {
			natsWithWorkers.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	heap0 := heapInUse(t, h.httpBase)

	big := strings.Repeat("a", 128<<10-1)
	for range 100 {
		args := []string{"-c", "sleep 600; :"}
		for range 12 {
			args = append(args, big)
		}
		startProc(t, "/bin/sh", args...)
	}

	sse := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
	var mine []wire.ProcessStats
	deadline := time.Now().Add(30 * time.Second)
	for len(mine) < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("the ten workers not in the stream: %d", len(mine))
		}
		f := sse.next(t, 10*time.Second)
		if len(f.Data) > wire.MaxEventBytes {
			t.Fatalf("event of %d bytes", len(f.Data))
		}
		mine = mine[:0]
		for _, w := range decodeStrict(t, f.Data).Workers {
			if ours[w.PID] {
				mine = append(mine, w)
			}
		}
	}
	for _, w := range mine {
		m := *w.Model
		if len(m) > wire.MaxModelBytes || !strings.HasSuffix(m, "…") || strings.ContainsAny(m, "\x1b\a\r\n\u009b\u202e") ||
			!strings.HasPrefix(m, `\x1b]0;owned\x07\x1b[2J`) {
			t.Fatalf("model %q (%d bytes)", m, len(m))
		}
	}
	bustest.WaitFor(t, 20*time.Second, func() error {
		if natsWithWorkers.Load() < 2 {
			return fmt.Errorf("NATS: %d events, %d with the workers", natsEvents.Load(), natsWithWorkers.Load())
		}
		return nil
	})
	var body string
	bustest.WaitFor(t, 30*time.Second, func() error {
		_, body, _ = httpGet(t, h.httpBase+"/metrics")
		if v, _ := metricValue(body, "hive_collector_cmdlines_cut_total"); v < 100 {
			return fmt.Errorf("%v command lines cut", v)
		}
		return nil
	})
	for _, name := range []string{"hive_telemetry_publish_errors_total", "hive_nats_bridge_publish_errors_total", "hive_nats_bridge_dropped_total"} {
		if v, ok := metricValue(body, name); !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0", name, v, ok)
		}
	}
	if strings.ContainsAny(body, "\x1b\a\r") {
		t.Error("/metrics carries a terminal escape")
	}
	if heap1 := heapInUse(t, h.httpBase); heap1-heap0 > 40<<20 {
		t.Errorf("heap in use grew from %.0f to %.0f MiB", heap0/(1<<20), heap1/(1<<20))
	}

	for _, args := range [][]string{{"watch", "--once", "--url", h.httpBase}, {"watch", "--once", "--nats", h.natsURL, "--wait", "3s"}} {
		out, err := exec.Command(hiveBin, args...).Output()
		if err != nil || !strings.Contains(string(out), `\x1b]0;owned`) || strings.ContainsAny(string(out), "\x1b\a\r\u009b\u202e") {
			t.Errorf("hive %v: %v\n%q", args, err, out)
		}
	}

	id := postJob(t, h.httpBase, `{"operation":"worker_process_list","hive_id":"h"}`)
	resp, err := http.Get(h.httpBase + "/v1/jobs/" + id + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if strings.ContainsAny(string(raw), "\x1b\a\u009b\u202e") {
		t.Errorf("the job stream carries a terminal escape")
	}
	var list []struct {
		PID   int    `json:"pid"`
		Model string `json:"model"`
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if d, ok := strings.CutPrefix(l, "data: "); ok && (strings.HasPrefix(d, "[{") || d == "[]") {
			if err := json.Unmarshal([]byte(d), &list); err != nil {
				t.Fatalf("worker list JSON line: %v (%d bytes)", err, len(d))
			}
		}
	}
	listed := 0
	for _, w := range list {
		if ours[uint32(w.PID)] {
			listed++
		}
		if len(w.Model) > wire.MaxModelBytes {
			t.Errorf("listed model of %d bytes", len(w.Model))
		}
	}
	if listed != 10 {
		t.Fatalf("worker list has %d of the ten\n%.2000s", listed, raw)
	}
}

func heapInUse(t *testing.T, base string) float64 {
	t.Helper()
	_, body, _ := httpGet(t, base+"/metrics")
	v, ok := metricValue(body, "go_memstats_heap_inuse_bytes")
	if !ok {
		t.Fatal("no go_memstats_heap_inuse_bytes")
	}
	return v
}

// Attack 5: eight loopback addresses open every stream they can. Each
// one's streams stop at their share of its slots (and all streams at
// theirs of the hive's), so /health, /metrics, a job and the Queen's
// stream opened before the flood keep working.
func TestAttackEightAddressesTakeNoOperatorSlot(t *testing.T) {
	h := startHive(t, "--http-max-conns", "256", "--http-max-conns-per-ip", "32")
	queen := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
	queen.next(t, 10*time.Second)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(h.httpBase, "http://"))
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	ok, refused := 0, 0
	for a := 2; a <= 9; a++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(a))}, Timeout: 5 * time.Second}
		for range 32 {
			c, err := d.Dial("tcp", "127.0.0.1:"+port)
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, c)
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			fmt.Fprintf(c, "GET /v1/heartbeats/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
			line, err := bufio.NewReader(c).ReadString('\n')
			switch {
			case strings.HasPrefix(line, "HTTP/1.1 200"):
				ok++
			case strings.HasPrefix(line, "HTTP/1.1 503"):
				refused++
			default:
				t.Fatalf("stream from 127.0.0.%d: %q %v", a, line, err)
			}
		}
	}
	if ok == 0 || ok > 8*28 || refused < 8*4 {
		t.Fatalf("%d streams accepted, %d refused: want 28 of each address's 32 slots at most", ok, refused)
	}
	for _, p := range []string{"/health", "/metrics"} {
		if code, body, _ := httpGet(t, h.httpBase+p); code != 200 {
			t.Errorf("GET %s during the flood: %d %.200s", p, code, body)
		}
	}
	postJob(t, h.httpBase, `{"operation":"model_list","hive_id":"h"}`)
	queen.next(t, 10*time.Second)
	_, body, _ := httpGet(t, h.httpBase+"/metrics")
	if v, _ := metricValue(body, "hive_http_streams_refused_total"); v < float64(refused) {
		t.Errorf("hive_http_streams_refused_total %v, %d refused", v, refused)
	}
}
