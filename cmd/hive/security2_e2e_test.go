package main

// One test per attack of the second security round (issue 20), each
// against the real binary on loopback, with a legitimate client watched
// meanwhile. SECURITY.md names them.

import (
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
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
