package main

import (
	"fmt"
	"net/http"
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
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(tokFile, oldTok)
	write(conf, "log-level: info\nlimits:\n  max-jobs: 64\n")
	h := startHive(t, "--config", conf, "--api-token-file", tokFile)
	sse := openSSEReq(t, bearerGet(h.httpBase+"/v1/heartbeats/stream", oldTok))
	sse.next(t, 10*time.Second)

	write(tokFile, newTok)
	write(conf, "log-level: debug\nlimits:\n  max-jobs: 8\n")
	if err := h.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	bustest.WaitFor(t, 10*time.Second, func() error {
		if !h.hasLog("reloaded the configuration") {
			return fmt.Errorf("no reload logged")
		}
		return nil
	})
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

func bearerGet(url, tok string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	return req
}
