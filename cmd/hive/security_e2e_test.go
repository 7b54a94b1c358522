package main

// One test per attack of issue 8, each against the real binary on
// loopback, bounded in count and time. SECURITY.md names them.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
)

const e2eToken = "e2e-token-0123456789abcdef0123456789"

// do sends one request and returns its status, body and headers.
func do(t *testing.T, method, u string, hdr map[string]string, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func isJSONError(body string) bool {
	var e struct {
		Error string `json:"error"`
	}
	return json.Unmarshal([]byte(body), &e) == nil && e.Error != ""
}

// Attack 1: with a token set, nothing but /health answers without it; the
// issue's cross-site shutdown is refused; the hive keeps running.
func TestAttackNoAuthentication(t *testing.T) {
	h := startHiveEnv(t, []string{"HIVE_API_TOKEN=" + e2eToken}, "--worker-dir", binDir, "--model-dir", t.TempDir(), "--worker-log-dir", t.TempDir())
	auth := map[string]string{"Authorization": "Bearer " + e2eToken}
	if code, _, _ := do(t, "GET", h.httpBase+"/health", nil, ""); code != 200 {
		t.Fatalf("health: %d", code)
	}
	for _, r := range [][2]string{{"GET", "/v1/heartbeats/stream"}, {"GET", "/capabilities"}, {"POST", "/v1/shutdown"}, {"POST", "/v1/jobs"}} {
		code, body, hdr := do(t, r[0], h.httpBase+r[1], map[string]string{"Content-Type": "application/json"}, "")
		if code != 401 || !isJSONError(body) || hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s without token: %d %s", r[0], r[1], code, body)
		}
	}
	// The curl, even with the token: another site's page.
	code, body, _ := do(t, "POST", h.httpBase+"/v1/shutdown",
		map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain", "Authorization": "Bearer " + e2eToken}, "x")
	if code != 403 || !isJSONError(body) {
		t.Errorf("cross-site shutdown: %d %s", code, body)
	}
	code, body, _ = do(t, "POST", h.httpBase+"/v1/shutdown", map[string]string{"Content-Type": "text/plain", "Authorization": "Bearer " + e2eToken}, "x")
	if code != 415 || !isJSONError(body) {
		t.Errorf("text/plain shutdown: %d %s", code, body)
	}
	// The token works.
	id := postJobHdr(t, h.httpBase, auth, `{"operation":"model_list","hive_id":"localhost"}`)
	if code, body, _ := do(t, "GET", h.httpBase+"/v1/jobs/"+id+"/stream", auth, ""); code != 200 || !strings.Contains(body, "data: [DONE]") {
		t.Errorf("job stream with token: %d %s", code, body)
	}
	if !h.hasLog("API token set: every request but GET /health needs it") {
		t.Error("no startup log of the access policy")
	}
	if code, _, _ := do(t, "GET", h.httpBase+"/health", nil, ""); code != 200 {
		t.Fatal("the hive stopped answering")
	}
}

// Attack 1, no token: control from loopback only, and not from a page that
// rebinds its name to 127.0.0.1; the startup log says so.
func TestAttackNoTokenLoopbackOnly(t *testing.T) {
	h := startHive(t)
	if !h.hasLog("remote control is off until an API token is set (HIVE_API_TOKEN or --api-token-file): jobs, DELETE, shutdown and Queen changes are accepted from loopback only") {
		t.Error("no startup warning that remote control is off")
	}
	code, body, _ := do(t, "POST", h.httpBase+"/v1/shutdown", map[string]string{"Content-Type": "application/json", "Host": "evil.example:7835"}, "")
	if code != 403 || !strings.Contains(body, "DNS rebinding") {
		t.Errorf("rebinding Host: %d %s", code, body)
	}
	code, body, _ = do(t, "POST", h.httpBase+"/v1/shutdown", map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}, "x")
	if code != 403 {
		t.Errorf("the issue's cross-site shutdown: %d %s", code, body)
	}
	if code, _, _ := do(t, "GET", h.httpBase+"/health", nil, ""); code != 200 {
		t.Fatal("the hive stopped answering")
	}
}

func TestAPITokenFileMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "token")
	if err := os.WriteFile(f, []byte(e2eToken+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	if code := run([]string{"config", "--api-token-file", f}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "chmod 600") {
		t.Fatalf("world-readable token file: exit %d, %q", code, stderr.String())
	}
	_ = os.Chmod(f, 0o600)
	h := startHive(t, "--api-token-file", f)
	if code, _, _ := do(t, "GET", h.httpBase+"/capabilities", nil, ""); code != 401 {
		t.Errorf("capabilities without the file's token: %d", code)
	}
	if code, _, _ := do(t, "GET", h.httpBase+"/capabilities", map[string]string{"Authorization": "Bearer " + e2eToken}, ""); code != 200 {
		t.Errorf("capabilities with the file's token: %d", code)
	}
	stderr.Reset()
	if code := run([]string{"healthcheck", "--url", h.httpBase + "/health"}, io.Discard, &stderr); code != 0 {
		t.Errorf("health check: %d %s", code, stderr.String())
	}
}

// Attack 2: a fake Queen answering 307 to the hive's own /v1/shutdown, or
// 302 to an internal URL, gets nothing followed; a queen_url outside
// --queen-allow is refused; changes are rate-limited.
func TestAttackDiscoverySSRF(t *testing.T) {
	var internalHits atomic.Int64
	internal := newCounter(t, &internalHits)
	var asked atomic.Int64
	var hiveBase atomic.Value
	hiveBase.Store("")
	evil := newRedirector(t, &asked, func(n int64) string {
		if n%2 == 0 {
			return internal + "/secret?token=x"
		}
		return hiveBase.Load().(string) + "/v1/shutdown"
	})
	h := startHiveEnv(t, []string{"HIVE_DISCOVERY_RETRY=1s"}, "--queen-allow", "127.0.0.1")
	hiveBase.Store(h.httpBase)
	code, body, _ := do(t, "GET", h.httpBase+"/capabilities?queen_url="+url.QueryEscape(evil), nil, "")
	if code != 200 {
		t.Fatalf("queen_url from loopback: %d %s", code, body)
	}
	bustest.WaitFor(t, 20*time.Second, func() error {
		if asked.Load() < 3 {
			return fmt.Errorf("%d attempts so far", asked.Load())
		}
		return nil
	})
	if n := internalHits.Load(); n != 0 {
		t.Errorf("the 302 target was requested %d times", n)
	}
	if code, _, _ := do(t, "GET", h.httpBase+"/health", nil, ""); code != 200 {
		t.Fatal("the 307 to /v1/shutdown shut the hive down")
	}
	// Not allowed: another host.
	code, body, _ = do(t, "GET", h.httpBase+"/capabilities?queen_url="+url.QueryEscape("http://169.254.169.254/latest"), nil, "")
	if code != 403 || !strings.Contains(body, "not allowed") {
		t.Errorf("metadata-service queen_url: %d %s", code, body)
	}
	// Rate: 200 changes in a row make at most the burst of loops.
	limited := 0
	for i := range 200 {
		u := fmt.Sprintf("%s/q%d", evil, i)
		code, _, hdr := do(t, "GET", h.httpBase+"/capabilities?queen_url="+url.QueryEscape(u), nil, "")
		if code == 429 && hdr.Get("Retry-After") != "" {
			limited++
		}
	}
	if limited < 190 {
		t.Errorf("only %d of 200 Queen changes were rate-limited", limited)
	}
}

func newCounter(t *testing.T, n *atomic.Int64) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) })}
	return serveTest(t, srv)
}

func newRedirector(t *testing.T, n *atomic.Int64, to func(int64) string) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := n.Add(1)
		code := http.StatusTemporaryRedirect
		if k%2 == 0 {
			code = http.StatusFound
		}
		http.Redirect(w, r, to(k), code)
	})}
	return serveTest(t, srv)
}

func serveTest(t *testing.T, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// Attack 4 and 5: oversized and hostile fields are refused at submit; the
// number of kept jobs is bounded.
func TestAttackJobInputs(t *testing.T) {
	h := startHiveEnv(t, []string{"HIVE_MAX_RETAINED_JOBS=20"}, "--model-dir", t.TempDir(), "--worker-dir", binDir, "--worker-log-dir", t.TempDir())
	ct := map[string]string{"Content-Type": "application/json"}
	for name, tc := range map[string]struct {
		body string
		want int
	}{
		"1 MB id":          {`{"operation":"model_get","hive_id":"h","id":"` + strings.Repeat("a", 1<<20) + `"}`, 413},
		"long id":          {`{"operation":"model_get","hive_id":"h","id":"` + strings.Repeat("a", 300) + `"}`, 400},
		"path id":          {`{"operation":"model_delete","hive_id":"h","id":"../../etc/passwd"}`, 400},
		"SSE injection":    {`{"operation":"worker_spawn","hive_id":"h","model":"tiny\r\rdata: [DONE]\r\r","worker":"cpu","device":0}`, 400},
		"control in alias": {`{"operation":"hive_check","alias":"a\u0000b"}`, 400},
		"flag as model":    {`{"operation":"worker_spawn","hive_id":"h","model":"--help","worker":"cpu","device":0}`, 400},
	} {
		code, body, _ := do(t, "POST", h.httpBase+"/v1/jobs", ct, tc.body)
		if code != tc.want || !isJSONError(body) {
			t.Errorf("%s: %d %.200s, want %d", name, code, body, tc.want)
		}
	}
	var ids []string
	for range 30 {
		id := postJob(t, h.httpBase, `{"operation":"model_get","hive_id":"h","id":"`+strings.Repeat("m", 200)+`"}`)
		jobStream(t, h.httpBase, id)
		ids = append(ids, id)
	}
	if code, _, _ := do(t, "GET", h.httpBase+"/v1/jobs/"+ids[0]+"/stream", nil, ""); code != 404 {
		t.Errorf("the oldest of 30 finished jobs is still kept with max-retained-jobs 20: %d", code)
	}
	if code, _, _ := do(t, "GET", h.httpBase+"/v1/jobs/"+ids[29]+"/stream", nil, ""); code != 200 {
		t.Errorf("the newest finished job is gone: %d", code)
	}
}

// Attack 6: a process that merely mentions a worker is not one; it can be
// neither stopped nor listed, and no argument but the worker flags shows.
func TestAttackAnyProcessIsAWorker(t *testing.T) {
	h := startHive(t, "--model-dir", t.TempDir(), "--worker-dir", binDir, "--worker-log-dir", t.TempDir())
	// Like `less /home/ops/llm-worker-notes.txt --db-password=hunter2`.
	notes := startProc(t, "sh", "-c", "sleep 60; true", "/home/ops/llm-worker-notes.txt", "--db-password=hunter2")
	w := startWorker(t, "--model", "tinyllama", "--port", freePort(t), "--cpu", "0", "--http=false")
	id := postJob(t, h.httpBase, fmt.Sprintf(`{"operation":"worker_process_delete","hive_id":"h","pid":%d}`, notes.Process.Pid))
	if end := lastLine(jobStream(t, h.httpBase, id)); !strings.Contains(end, "not a worker") {
		t.Errorf("delete of a non-worker: %s", end)
	}
	if syscall.Kill(notes.Process.Pid, 0) != nil {
		t.Fatal("the non-worker was killed")
	}
	id = postJob(t, h.httpBase, `{"operation":"worker_process_list","hive_id":"h"}`)
	out := strings.Join(jobStream(t, h.httpBase, id), "\n")
	if strings.Contains(out, "hunter2") || strings.Contains(out, strconv.Itoa(notes.Process.Pid)) {
		t.Errorf("list shows the non-worker or its arguments:\n%s", out)
	}
	if !strings.Contains(out, fmt.Sprintf(`"pid":%d`, w.Process.Pid)) || strings.Contains(out, binDir) {
		t.Errorf("list should show the worker by name and flags only:\n%s", out)
	}
}

// Attack 7: live spawned workers are bounded.
func TestAttackUnboundedWorkers(t *testing.T) {
	h := startHive(t, "--model-dir", t.TempDir(), "--worker-dir", binDir, "--worker-log-dir", t.TempDir(), "--max-workers", "2", "--stop-workers-on-exit")
	spawn := `{"operation":"worker_spawn","hive_id":"h","model":"tinyllama","worker":"cpu","device":0}`
	for range 2 {
		if end := lastLine(jobStream(t, h.httpBase, postJob(t, h.httpBase, spawn))); end != wire.EndDone {
			t.Fatalf("spawn: %s", end)
		}
	}
	code, body, _ := do(t, "POST", h.httpBase+"/v1/jobs", map[string]string{"Content-Type": "application/json"}, spawn)
	if code != 409 || !strings.Contains(body, "--max-workers") {
		t.Fatalf("third spawn with --max-workers 2: %d %s", code, body)
	}
	if _, err := h.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// Attack 8: a worker that ignores SIGTERM during a spawn is killed within
// the shutdown budget; the hive exits cleanly; the open job stream ends
// with [CANCELLED].
func TestAttackShutdownOrphansNoWorker(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 0.1; done\n"
	if err := os.WriteFile(filepath.Join(dir, "llm-worker-rbee-metal"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h := startHive(t, "--model-dir", t.TempDir(), "--worker-dir", dir, "--worker-log-dir", t.TempDir(), "--shutdown-timeout", "4s")
	id := postJob(t, h.httpBase, `{"operation":"worker_spawn","hive_id":"h","model":"tinyllama","worker":"metal","device":0}`)
	resp, err := http.Get(h.httpBase + "/v1/jobs/" + id + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	pid := 0
	for pid == 0 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("stream ended before the worker started")
			}
			if m := spawnedPIDRe.FindStringSubmatch(l); m != nil {
				pid, _ = strconv.Atoi(m[1])
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no worker pid in the narration")
		}
	}
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	if _, err := h.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("hive exit: %v\n%s", err, h.logText())
	}
	var last string
	for l := range lines {
		if d, ok := strings.CutPrefix(l, "data: "); ok {
			last = d
		}
	}
	if last != wire.EndCancelled {
		t.Errorf("job stream ended with %q, want %s", last, wire.EndCancelled)
	}
	if alive(pid) {
		t.Fatalf("worker %d outlived the hive", pid)
	}
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	return len(f) > 0 && f[0] != "Z"
}

// Attack 10: the answers net/http writes itself are JSON too, and a busy
// NATS port fails the start at once with the real error.
func TestAttackSmallOnes(t *testing.T) {
	h := startHive(t)
	code, body, hdr := do(t, "GET", h.httpBase+"/health", map[string]string{"X-Big": strings.Repeat("a", 100<<10)}, "")
	if code != 431 || !isJSONError(body) || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("huge header: %d %q %s", code, hdr.Get("Content-Type"), body)
	}
	code, body, _ = do(t, "GET", h.httpBase+"/health/", nil, "")
	if code != 404 || !isJSONError(body) {
		t.Errorf("/health/: %d %s", code, body)
	}
	used := strings.TrimPrefix(h.natsURL, "nats://")
	var stderr strings.Builder
	start := time.Now()
	code = run([]string{"--port", "0", "--nats-listen", used, "--queen-url", "", "--cgroup-root", ""}, io.Discard, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "the port is in use") || !strings.Contains(stderr.String(), "--nats-listen") {
		t.Fatalf("busy NATS port: exit %d\n%s", code, stderr.String())
	}
	t.Logf("busy NATS port reported after %v", time.Since(start))
}
