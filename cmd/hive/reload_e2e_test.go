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

// SIGHUP (systemctl reload) applies a new token file and log level; the
// stream opened with the old token ends; what needs a restart is named.
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
	if !strings.Contains(logs, "log-level") || !strings.Contains(logs, "api token") || !strings.Contains(logs, `"max-jobs"`) {
		t.Errorf("the reload line does not say what changed and what needs a restart:\n%s", logs)
	}
	for tok, want := range map[string]int{oldTok: 401, newTok: 200} {
		if code, _, _ := do(t, "GET", h.httpBase+"/capabilities", map[string]string{"Authorization": "Bearer " + tok}, ""); code != want {
			t.Errorf("token %s after the reload: %d, want %d", tok[:14], code, want)
		}
	}
	// The stream opened with the old token ends (it was let in by a
	// credential that is revoked now); one opened with the new goes on.
	if !sse.ends(t, 10*time.Second) {
		t.Error("the stream opened with the rotated-out token goes on")
	}
	fresh := openSSEReq(t, bearerGet(h.httpBase+"/v1/heartbeats/stream", newTok))
	for range 2 {
		fresh.next(t, 10*time.Second)
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

// A read token (issue 29): it reads the stream, capabilities and metrics
// and controls nothing; rotating it ends the streams it let in, and the
// ones the API token let in go on.
func TestReadTokenReadsOnly(t *testing.T) {
	dir := t.TempDir()
	ctlTok, readTok, newRead := "control-token-aaaaaaaaaaaaaaa", "read-token-bbbbbbbbbbbbbbbbbbb", "read-token-ccccccccccccccccccc"
	ctlFile, readFile := filepath.Join(dir, "token"), filepath.Join(dir, "read-token")
	writePrivate(t, ctlFile, ctlTok)
	writePrivate(t, readFile, readTok)
	h := startHiveEnv(t, []string{"HIVE_API_READ_TOKEN_FILE=" + readFile}, "--api-token-file", ctlFile)
	for _, c := range []struct {
		method, path, tok string
		want              int
	}{
		{"GET", "/capabilities", readTok, 200},
		{"GET", "/metrics", readTok, 200},
		{"GET", "/capabilities", "", 401},
		{"POST", "/v1/jobs", readTok, 401},
		{"POST", "/v1/shutdown", readTok, 401},
		{"GET", "/capabilities", ctlTok, 200},
	} {
		hdr := map[string]string{"Content-Type": "application/json"}
		if c.tok != "" {
			hdr["Authorization"] = "Bearer " + c.tok
		}
		body := ""
		if c.method == "POST" {
			body = `{"operation":"model_list","hive_id":"h"}`
		}
		if code, b, _ := do(t, c.method, h.httpBase+c.path, hdr, body); code != c.want {
			t.Errorf("%s %s with %q: %d %s, want %d", c.method, c.path, c.tok, code, b, c.want)
		}
	}
	byRead := openSSEReq(t, bearerGet(h.httpBase+"/v1/heartbeats/stream", readTok))
	byCtl := openSSEReq(t, bearerGet(h.httpBase+"/v1/heartbeats/stream", ctlTok))
	byRead.next(t, 10*time.Second)
	byCtl.next(t, 10*time.Second)
	writePrivate(t, readFile, newRead)
	reloadHive(t, h)
	if !byRead.ends(t, 10*time.Second) {
		t.Error("the stream of the rotated-out read token goes on")
	}
	for range 2 {
		byCtl.next(t, 10*time.Second)
	}
	if code, _, _ := do(t, "GET", h.httpBase+"/capabilities", map[string]string{"Authorization": "Bearer " + newRead}, ""); code != 200 {
		t.Errorf("the new read token: %d", code)
	}
	_, m, _ := do(t, "GET", h.httpBase+"/metrics", map[string]string{"Authorization": "Bearer " + ctlTok}, "")
	if v, _ := metricValue(m, "hive_http_streams_revoked_total"); v != 1 {
		t.Errorf("hive_http_streams_revoked_total %v, want 1", v)
	}
}
