package main

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser finds Debian's chromium (.ci/run installs it); without one the
// dashboard test is skipped, saying so.
func browser(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on this machine: the dashboard's browser test is skipped (apt-get install -y chromium)")
	return ""
}

// newBrowser starts a headless Chromium at width x height and returns its
// context, ended with the test.
func newBrowser(t *testing.T, width, height int, within time.Duration) context.Context {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser(t)), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(width, height))...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, within)
	t.Cleanup(cancelT)
	return ctx
}

// pageText polls the page's text until ok accepts it, or fails the test
// after within.
func pageText(t *testing.T, ctx context.Context, what string, within time.Duration, ok func(string) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		s := mustText(t, ctx)
		if ok(s) {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s not on the page after %v:\n%s", what, within, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mustText is the page's text now.
func mustText(t *testing.T, ctx context.Context) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatalf("read the page: %v", err)
	}
	return s
}

func contains(sub ...string) func(string) bool {
	return func(s string) bool {
		for _, x := range sub {
			if !strings.Contains(s, x) {
				return false
			}
		}
		return true
	}
}

// The dashboard in a real headless Chromium: it shows a spawned worker's
// model, and comes back on its own after the hive restarts.
func TestDashboardInABrowser(t *testing.T) {
	browser(t)
	args := []string{"--telemetry-interval", "500ms", "--worker-dir", binDir, "--model-dir", t.TempDir(),
		"--worker-log-dir", t.TempDir(), "--stop-workers-on-exit"}
	h := startHive(t, append([]string{"--port", "0"}, args...)...)
	ctx := newBrowser(t, 1200, 500, 90*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(h.httpBase+"/"), chromedp.WaitReady(chromedp.CSS("#rows"))); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}

	lines := jobStream(t, h.httpBase, postJob(t, h.httpBase, `{"operation":"worker_spawn","hive_id":"h","model":"dash-model","worker":"cpu","device":0}`))
	m := spawnedRe.FindStringSubmatch(strings.Join(lines, "\n"))
	if lastLine(lines) != "[DONE]" || m == nil {
		t.Fatalf("spawn: %s", lastLine(lines))
	}
	// The hive is killed below, so it cannot stop its worker: the test does.
	workerPID, _ := strconv.Atoi(m[1])
	t.Cleanup(func() { _ = syscall.Kill(-workerPID, syscall.SIGKILL) })
	took := pageText(t, ctx, "the spawned worker's model", 10*time.Second, contains("dash-model"))
	pageText(t, ctx, "the hive's health in words", 10*time.Second, contains("health: healthy"))
	pageText(t, ctx, "the worker's state", 10*time.Second, contains("ready"))
	t.Logf("the page showed the spawned worker %v after the spawn job ended (the issue's bar: 3 s)", took.Round(time.Millisecond))

	// The hive restarts on the port it had (the page's origin): the page
	// reconnects by itself.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(h.httpBase, "http://"))
	_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
	<-h.exited
	pageText(t, ctx, "the lost connection", 10*time.Second, func(s string) bool { return !strings.Contains(s, "\nlive\n") && !strings.HasPrefix(s, "live") })
	startHive(t, append([]string{"--port", port}, args...)...)
	took = pageText(t, ctx, "the reconnect", 30*time.Second, func(s string) bool {
		return strings.Contains(s, "live") && strings.Contains(s, "reconnect") && !strings.Contains(s, " 0 reconnect")
	})
	if state, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("state"))); err != nil || state != "live" {
		t.Fatalf("state after the restart: %q %v", state, err)
	}
	t.Logf("live again %v after the new hive started", took.Round(time.Millisecond))
}

// A page on another origin reads the stream with EventSource (CORS), and
// cannot send a job (no CORS on state-changing routes).
func TestEventSourceFromAnotherOrigin(t *testing.T) {
	exe := browser(t)
	h := startHive(t, "--telemetry-interval", "300ms")
	page := `<!doctype html><title>waiting</title><script>
const es = new EventSource("` + h.httpBase + `/v1/heartbeats/stream");
let n = 0;
es.addEventListener("heartbeat", m => { n++; document.title = "events " + n + " " + JSON.parse(m.data).hive_id; });
fetch("` + h.httpBase + `/v1/jobs", {method: "POST", headers: {"Content-Type": "application/json"}, body: '{"operation":"model_list","hive_id":"h"}'})
  .then(r => { window.postResult = "status " + r.status; }, e => { window.postResult = "refused"; });
</script>`
	other := serveTest(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page))
	})})
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.Flag("disable-dev-shm-usage", true))...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()
	if err := chromedp.Do(ctx, chromedp.Navigate(other+"/")); err != nil {
		t.Fatalf("open the other origin's page: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for {
		var title string
		title, err = chromedp.Run(ctx, chromedp.Title())
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(title, "events 2 e2e-") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("EventSource from %s got no events from %s: title %q", other, h.httpBase, title)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var post string
	for post == "" && time.Now().Before(deadline) {
		if post, err = chromedp.Run(ctx, chromedp.Evaluate[string](`window.postResult || ""`)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if post != "refused" {
		t.Fatalf("a cross-origin POST /v1/jobs was answered to the page: %q", post)
	}
}

// A hive with a token (issue 30): the page no longer shows "down" beside
// "waiting for the first event"; it says a token is needed and asks for
// it, keeps it in the tab's session (never a URL), and then streams; a
// wrong one is said to be wrong.
func TestDashboardAsksForTheToken(t *testing.T) {
	h := startHiveEnv(t, []string{"HIVE_API_TOKEN=" + e2eToken}, "--telemetry-interval", "300ms")
	ctx := newBrowser(t, 1200, 600, 90*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(h.httpBase+"/"), chromedp.WaitVisible(chromedp.ID("token"))); err != nil {
		t.Fatalf("the token prompt: %v", err)
	}
	pageText(t, ctx, "the token prompt", 10*time.Second, contains("token needed", "needs its API token", "health: the hive needs a token"))
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("token"), "not-the-token-0123456789"), chromedp.Click(chromedp.CSS("#auth button"))); err != nil {
		t.Fatal(err)
	}
	pageText(t, ctx, "a wrong token said wrong", 10*time.Second, contains("refused this token"))
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("token"), e2eToken), chromedp.Click(chromedp.CSS("#auth button"))); err != nil {
		t.Fatal(err)
	}
	pageText(t, ctx, "the stream with the token", 15*time.Second, func(s string) bool {
		return strings.Contains(s, "live") && strings.Contains(s, "health: healthy") && !strings.Contains(s, "token needed")
	})
	url, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	if err != nil || strings.Contains(url, e2eToken) {
		t.Errorf("the page's URL holds the token: %q %v", url, err)
	}
}

// The hub chip says what the history is missing: while the hub is away,
// the events kept; once it is back and the hive forwards more slowly
// than it ticks (nats.hub-rate 1, a tick every 250 ms), catching up.
func TestDashboardHubCatchingUp(t *testing.T) {
	t.Parallel()
	browser(t)
	cl := startHubCluster(t, 1)
	ctx := context.Background()
	if _, admin, err := cl.CreateStream(ctx, "../../deployments/hub-stream.json"); err != nil {
		t.Fatal(err)
	} else {
		defer admin.Close()
	}
	h := startHiveEnv(t, append(cl.HiveEnv(), "HIVE_NATS_HUB_RATE=1"), "--hive-id", "dash-hub", "--telemetry-interval", "250ms")
	page := newBrowser(t, 1200, 500, 3*time.Minute)
	if err := chromedp.Do(page, chromedp.Navigate(h.httpBase+"/"), chromedp.WaitReady(chromedp.CSS("#hub"))); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	pageText(t, page, "the hub connected", 30*time.Second, contains("hub: "))
	cl.StopNode(0)
	pageText(t, page, "the events kept while the hub is away", 30*time.Second, contains("hub: disconnected (", "events kept"))
	if err := cl.StartNode(0); err != nil {
		t.Fatal(err)
	}
	pageText(t, page, "catching up", 60*time.Second, contains("hub: catching up (", "behind)"))
}
