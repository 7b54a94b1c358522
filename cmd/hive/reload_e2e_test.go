package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive/bus/bustest"
)

// SIGHUP (systemctl reload) applies a new token file and log level under
// an open stream, which goes on; what needs a restart is named.
func TestReloadOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	oldTok, newTok := "reload-token-aaaaaaaaaaaaaaaa", "reload-token-bbbbbbbbbbbbbbbb"
	tokFile := filepath.Join(dir, "token")
	conf := filepath.Join(dir, "hive.yaml")
	writePrivate(t, tokFile, oldTok)
	writePrivate(t, conf, "log-level: info\nlimits:\n  max-jobs: 64\n")
	h := startHive(t, "--config", conf, "--api-token-file", tokFile)
	sse := openSSEReq(t, bearerGet(h.httpBase+"/v1/heartbeats/stream", oldTok))
	sse.next(t, 10*time.Second)

	writePrivate(t, tokFile, newTok)
	writePrivate(t, conf, "log-level: debug\nlimits:\n  max-jobs: 8\n")
	reloadHive(t, h)
	logs := h.logText()
	if !strings.Contains(logs, "log-level") || !strings.Contains(logs, "api token") || !strings.Contains(logs, "Jobs") {
		t.Errorf("the reload line does not say what changed and what needs a restart:\n%s", logs)
	}
	for tok, want := range map[string]int{oldTok: 401, newTok: 200} {
		if code, _, _ := do(t, "GET", h.httpBase+"/capabilities", map[string]string{"Authorization": "Bearer " + tok}, ""); code != want {
			t.Errorf("token %s after the reload: %d, want %d", tok[:14], code, want)
		}
	}
	for range 2 {
		sse.next(t, 10*time.Second) // the stream opened with the old token goes on
	}
	select {
	case <-h.exited:
		t.Fatal("SIGHUP ended the hive")
	default:
	}
}

// writePrivate writes s to path, mode 0600 (a token or config file).
func writePrivate(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// reloadHive sends h SIGHUP and waits for its reload line.
func reloadHive(t *testing.T, h *hiveProc) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	bustest.WaitFor(t, 10*time.Second, func() error {
		if !h.hasLog("reloaded the configuration") {
			return fmt.Errorf("no reload logged")
		}
		return nil
	})
}

func bearerGet(url, tok string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	return req
}

// A reload also applies the worker pattern (the next tick matches with
// it), the CORS origins and the Queen allow-list, under an open stream.
func TestReloadWorkerMatchCORSAndQueenAllow(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "hive.yaml")
	writePrivate(t, conf, "http:\n  cors-origins: http://a.example\nqueen:\n  allow: 10.9.9.9\nworkers:\n  match: 'cmdline:--model reload-a( |$)'\n")
	startWorker(t, "--model", "reload-a", "--port", "9611", "--cpu", "0", "--http=false")
	startWorker(t, "--model", "reload-b", "--port", "9612", "--cpu", "0", "--http=false")
	h := startHive(t, "--config", conf, "--telemetry-interval", "200ms")
	sse := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
	models := func() string {
		t.Helper()
		var ev struct {
			Workers []struct{ Model *string }
		}
		if err := json.Unmarshal([]byte(sse.next(t, 10*time.Second).Data), &ev); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, w := range ev.Workers {
			if w.Model != nil {
				out = append(out, *w.Model)
			}
		}
		return strings.Join(out, ",")
	}
	bustest.WaitFor(t, 10*time.Second, func() error {
		if m := models(); m != "reload-a" {
			return fmt.Errorf("workers %q before the reload, want reload-a", m)
		}
		return nil
	})
	allowed := func(origin string) string {
		_, _, hdr := do(t, "GET", h.httpBase+"/health", map[string]string{"Origin": origin}, "")
		return hdr.Get("Access-Control-Allow-Origin")
	}
	queen := func() int {
		code, _, _ := do(t, "GET", h.httpBase+"/capabilities?queen_url="+url.QueryEscape("http://127.0.0.1:9/"), nil, "")
		return code
	}
	if allowed("http://a.example") != "http://a.example" || allowed("http://b.example") != "" || queen() != http.StatusForbidden {
		t.Fatalf("before the reload: CORS a %q, b %q, Queen 127.0.0.1 %d", allowed("http://a.example"), allowed("http://b.example"), queen())
	}

	writePrivate(t, conf, "http:\n  cors-origins: http://b.example\nqueen:\n  allow: 127.0.0.1\nworkers:\n  match: 'cmdline:--model reload-b( |$)'\n")
	reloadHive(t, h)
	for _, s := range []string{"worker-match", "cors-origins", "queen-allow"} {
		if !strings.Contains(h.logText(), s) {
			t.Errorf("the reload line does not name %s:\n%s", s, h.logText())
		}
	}
	bustest.WaitFor(t, 10*time.Second, func() error {
		if m := models(); m != "reload-b" {
			return fmt.Errorf("workers %q after the reload, want reload-b", m)
		}
		return nil
	})
	if a, b := allowed("http://a.example"), allowed("http://b.example"); a != "" || b != "http://b.example" {
		t.Errorf("CORS after the reload: a %q, b %q", a, b)
	}
	if code := queen(); code != http.StatusOK {
		t.Errorf("a Queen on 127.0.0.1 after the allow-list named it: %d", code)
	}
}
