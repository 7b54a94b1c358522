package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
)

const testToken = "0123456789abcdef0123456789abcdef"

// routerFor builds the gateway's handler on a real bus whose jobs and
// shutdown subjects answer OK, for requests from any peer address (no
// socket needed to be "remote").
func routerFor(t *testing.T, cfg Config) http.Handler {
	t.Helper()
	b := bustest.Start(t)
	if cfg.HiveID == "" {
		cfg.HiveID = "h1"
	}
	g, err := New(cfg, b, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := b.Connect("router")
	if err != nil {
		t.Fatal(err)
	}
	ok := func(body string) nats.MsgHandler { return func(m *nats.Msg) { _ = m.Respond([]byte(body)) } }
	for subj, body := range map[string]string{
		wire.SubjectJobsCreate:      `{"job_id":"` + jobID + `","sse_url":"/v1/jobs/` + jobID + `/stream"}`,
		wire.SubjectHiveShutdown:    `{"status":"shutting down"}`,
		wire.SubjectJobsCancel:      `{"job_id":"` + jobID + `","status":"cancelled"}`,
		wire.SubjectCapabilitiesGet: capsBody,
	} {
		if _, err := nc.Subscribe(subj, ok(body)); err != nil {
			t.Fatal(err)
		}
	}
	_ = nc.Flush()
	return g.router(nc)
}

type apiCall struct {
	method, path, remote, host string
	hdr                        map[string]string
	body                       string
}

func (c apiCall) do(h http.Handler) *httptest.ResponseRecorder {
	req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
	req.RemoteAddr = c.remote
	if c.host != "" {
		req.Host = c.host
	}
	for k, v := range c.hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

var (
	jsonCT   = map[string]string{"Content-Type": "application/json"}
	withAuth = map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + testToken}
)

const (
	loop   = "127.0.0.1:40000"
	remote = "192.0.2.7:40000" // TEST-NET-1: never a real peer
	jobOp  = `{"operation":"model_list","hive_id":"h"}`
)

func TestAccessWithoutToken(t *testing.T) {
	h := routerFor(t, Config{})
	for _, tc := range []struct {
		name string
		c    apiCall
		want int
	}{
		{"health from anywhere", apiCall{method: "GET", path: "/health", remote: remote}, 200},
		{"capabilities from anywhere", apiCall{method: "GET", path: "/capabilities", remote: remote}, 200},
		{"job from loopback", apiCall{method: "POST", path: "/v1/jobs", remote: loop, host: "127.0.0.1:7835", hdr: jsonCT, body: jobOp}, 200},
		{"job from localhost name", apiCall{method: "POST", path: "/v1/jobs", remote: loop, host: "localhost:7835", hdr: jsonCT, body: jobOp}, 200},
		{"job from a remote peer", apiCall{method: "POST", path: "/v1/jobs", remote: remote, host: "10.1.1.1:7835", hdr: jsonCT, body: jobOp}, 403},
		{"shutdown from a remote peer", apiCall{method: "POST", path: "/v1/shutdown", remote: remote, hdr: jsonCT}, 403},
		{"cancel from a remote peer", apiCall{method: "DELETE", path: "/v1/jobs/" + jobID, remote: remote}, 403},
		{"cancel from loopback", apiCall{method: "DELETE", path: "/v1/jobs/" + jobID, remote: loop, host: "127.0.0.1"}, 200},
		// DNS rebinding: a page from evil.example whose name now resolves
		// to 127.0.0.1 talks to the hive "same-origin".
		{"rebinding host", apiCall{method: "POST", path: "/v1/shutdown", remote: loop, host: "evil.example:7835", hdr: jsonCT}, 403},
		// The CSRF: a cross-site page's text/plain POST.
		{"cross-site origin", apiCall{method: "POST", path: "/v1/shutdown", remote: loop, host: "127.0.0.1:7835",
			hdr: map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}, body: "x"}, 403},
		{"sec-fetch-site cross-site", apiCall{method: "POST", path: "/v1/shutdown", remote: loop, host: "127.0.0.1:7835",
			hdr: map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}}, 403},
		{"same-origin page", apiCall{method: "POST", path: "/v1/shutdown", remote: loop, host: "127.0.0.1:7835",
			hdr: map[string]string{"Origin": "http://127.0.0.1:7835", "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}}, 200},
		{"text/plain from loopback", apiCall{method: "POST", path: "/v1/shutdown", remote: loop, host: "127.0.0.1", hdr: map[string]string{"Content-Type": "text/plain"}, body: "x"}, 415},
		{"no content type", apiCall{method: "POST", path: "/v1/shutdown", remote: loop, host: "127.0.0.1"}, 415},
		{"utf-16", apiCall{method: "POST", path: "/v1/shutdown", remote: loop, host: "127.0.0.1", hdr: map[string]string{"Content-Type": "application/json; charset=utf-16"}}, 415},
	} {
		rec := tc.c.do(h)
		if rec.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, rec.Body, tc.want)
		}
		if rec.Code >= 400 && !json.Valid(rec.Body.Bytes()) {
			t.Errorf("%s: error body is not JSON: %q", tc.name, rec.Body)
		}
	}
}

func TestAccessWithToken(t *testing.T) {
	h := routerFor(t, Config{Token: testToken, Access: AccessToken})
	for _, tc := range []struct {
		name string
		c    apiCall
		want int
	}{
		{"health needs nothing", apiCall{method: "GET", path: "/health", remote: remote}, 200},
		{"stream needs the token", apiCall{method: "GET", path: "/v1/heartbeats/stream", remote: loop}, 401},
		{"capabilities need the token", apiCall{method: "GET", path: "/capabilities", remote: remote}, 401},
		{"capabilities with the token", apiCall{method: "GET", path: "/capabilities", remote: remote, hdr: map[string]string{"Authorization": "Bearer " + testToken}}, 200},
		{"wrong token", apiCall{method: "POST", path: "/v1/jobs", remote: remote, hdr: map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + testToken + "x"}, body: jobOp}, 401},
		{"basic scheme", apiCall{method: "POST", path: "/v1/jobs", remote: remote, hdr: map[string]string{"Content-Type": "application/json", "Authorization": "Basic " + testToken}, body: jobOp}, 401},
		{"loopback without the token", apiCall{method: "POST", path: "/v1/jobs", remote: loop, host: "127.0.0.1", hdr: jsonCT, body: jobOp}, 401},
		{"remote with the token", apiCall{method: "POST", path: "/v1/jobs", remote: remote, host: "10.1.1.1:7835", hdr: withAuth, body: jobOp}, 200},
		{"remote shutdown with the token", apiCall{method: "POST", path: "/v1/shutdown", remote: remote, hdr: withAuth}, 200},
		{"token but cross-site", apiCall{method: "POST", path: "/v1/shutdown", remote: remote, host: "10.1.1.1:7835",
			hdr: map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + testToken, "Origin": "http://evil.example"}}, 403},
	} {
		rec := tc.c.do(h)
		if rec.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, rec.Body, tc.want)
		}
		if rec.Code == 401 && rec.Header().Get("WWW-Authenticate") != `Bearer realm="hive"` {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
	}
	// --auth-read=false: reads open, control still needs the token.
	open := routerFor(t, Config{Token: testToken, Access: AccessOpenReads})
	if rec := (apiCall{method: "GET", path: "/capabilities", remote: remote}).do(open); rec.Code != 200 {
		t.Errorf("reads open: capabilities %d", rec.Code)
	}
	if rec := (apiCall{method: "POST", path: "/v1/shutdown", remote: remote, hdr: jsonCT}).do(open); rec.Code != 401 {
		t.Errorf("reads open: shutdown %d, want 401", rec.Code)
	}
}

func TestAccessOpen(t *testing.T) {
	h := routerFor(t, Config{Access: AccessOpen})
	if rec := (apiCall{method: "POST", path: "/v1/jobs", remote: remote, host: "10.1.1.1", hdr: jsonCT, body: jobOp}).do(h); rec.Code != 200 {
		t.Errorf("remote job with --allow-unauthenticated: %d %s", rec.Code, rec.Body)
	}
	// Still no CSRF.
	if rec := (apiCall{method: "POST", path: "/v1/shutdown", remote: remote, hdr: map[string]string{"Origin": "http://evil.example", "Content-Type": "application/json"}}).do(h); rec.Code != 403 {
		t.Errorf("cross-site with --allow-unauthenticated: %d", rec.Code)
	}
}

// A page on evil.example whose name resolves to the hive (DNS rebinding)
// sends same-origin requests with Host: evil.example. Without a token they
// are refused in every access mode; an IP, localhost or the hive's own
// names still work, and with a token the token decides.
func TestDNSRebindingRefusedInEveryMode(t *testing.T) {
	for _, access := range []string{AccessToken, AccessOpenReads, AccessOpen} {
		h := routerFor(t, Config{Access: access, Hosts: []string{"gpu-01.cluster.example"}})
		evil := map[string]string{"Content-Type": "application/json", "Origin": "http://evil.example:7835", "Sec-Fetch-Site": "same-origin"}
		if rec := (apiCall{method: "POST", path: "/v1/shutdown", remote: loop, host: "evil.example:7835", hdr: evil}).do(h); rec.Code != 403 ||
			!strings.Contains(rec.Body.String(), "DNS rebinding") {
			t.Errorf("access %s: rebinding shutdown %d %s, want 403", access, rec.Code, rec.Body)
		}
		for _, host := range []string{"127.0.0.1:7835", "localhost", "[::1]:7835", "GPU-01.cluster.example.:7835"} {
			if rec := (apiCall{method: "POST", path: "/v1/jobs", remote: loop, host: host, hdr: jsonCT, body: jobOp}).do(h); rec.Code != 200 {
				t.Errorf("access %s: job with Host %s: %d %s", access, host, rec.Code, rec.Body)
			}
		}
	}
	open := routerFor(t, Config{Access: AccessOpen})
	if rec := (apiCall{method: "POST", path: "/v1/jobs", remote: remote, host: "192.0.2.1:7835", hdr: jsonCT, body: jobOp}).do(open); rec.Code != 200 {
		t.Errorf("open: remote job by IP: %d %s", rec.Code, rec.Body)
	}
	tok := routerFor(t, Config{Token: testToken})
	if rec := (apiCall{method: "POST", path: "/v1/jobs", remote: remote, host: "any.name.example", hdr: withAuth, body: jobOp}).do(tok); rec.Code != 200 {
		t.Errorf("token: job under another name: %d %s", rec.Code, rec.Body)
	}
}

func TestTrailingSlashIsJSON404(t *testing.T) {
	h := routerFor(t, Config{})
	rec := (apiCall{method: "GET", path: "/health/", remote: loop}).do(h)
	if rec.Code != 404 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("/health/: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if rec := (apiCall{method: "GET", path: "/health", remote: loop, body: "x"}).do(h); rec.Code != 400 {
		t.Fatalf("GET with a body: %d", rec.Code)
	}
}

// parseSSE splits a stream the way the SSE spec does: lines end at CRLF,
// LF or a bare CR, an empty line ends an event.
func parseSSE(b []byte) [][]string {
	lines := strings.Split(strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(string(b)), "\n")
	var events [][]string
	var cur []string
	for _, l := range lines {
		if l == "" {
			if cur != nil {
				events = append(events, cur)
			}
			cur = nil
			continue
		}
		if d, ok := strings.CutPrefix(l, "data: "); ok {
			cur = append(cur, d)
		}
	}
	return events
}

// Issue 8's injection: bare CRs in a payload must not end the event.
func TestSSEFramesSurviveAnyBytes(t *testing.T) {
	for _, payload := range []string{
		"tiny\r\rdata: [DONE]\r\r",
		"a\r\nb\nc\rd",
		"\r\n\r\n\n\r",
		"plain",
	} {
		for name, frame := range map[string][]byte{
			"job":       jobFrame(payload),
			"telemetry": encodeFrame(7, "heartbeat", []byte(payload)).data,
		} {
			evs := parseSSE(frame)
			if len(evs) != 1 {
				t.Errorf("%s frame of %q parses as %d events: %q", name, payload, len(evs), frame)
				continue
			}
			joined := strings.Join(evs[0], "\n")
			want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(payload)
			if joined != want {
				t.Errorf("%s frame of %q carries %q", name, payload, joined)
			}
		}
	}
	var b bytes.Buffer
	writeData(&b, []byte("x\r"))
	if b.String() != "data: x\ndata: \n" {
		t.Errorf("trailing CR: %q", b.String())
	}
}

func TestJSONServerErrors(t *testing.T) {
	in := []byte("HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large")
	out, ok := jsonServerError(in)
	if !ok || !bytes.Contains(out, []byte("Content-Type: application/json")) || !bytes.HasSuffix(out, []byte(`{"error":"431 Request Header Fields Too Large"}`)) {
		t.Fatalf("431 rewritten as %q (%v)", out, ok)
	}
	// A handler's own answer is left alone.
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nok",
		"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nDate: x\r\n\r\n{}",
	} {
		if _, ok := jsonServerError([]byte(s)); ok {
			t.Errorf("rewrote %q", s)
		}
	}
}
