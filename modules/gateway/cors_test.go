package gateway

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func request(t *testing.T, method, url string, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestCORSOnReadsOnly(t *testing.T) {
	g := startGateway(t, Config{})
	origin := map[string]string{"Origin": "http://dash.example", "Access-Control-Request-Method": "GET"}
	for _, path := range []string{"/v1/heartbeats/stream", "/capabilities", "/v1/capabilities", "/health", "/v1/jobs/" + jobID + "/stream"} {
		resp := request(t, http.MethodOptions, g.base+path, origin)
		if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Last-Event-ID") {
			t.Errorf("preflight %s: %d %v", path, resp.StatusCode, resp.Header)
		}
	}
	resp := request(t, http.MethodGet, g.base+"/health", origin)
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("GET /health from another origin: %v", resp.Header)
	}
	// State-changing routes: no CORS at all, so a browser's preflight fails.
	for _, tc := range [][2]string{{"/v1/jobs", "POST"}, {"/v1/shutdown", "POST"}, {"/v1/jobs/" + jobID, "DELETE"}} {
		resp := request(t, http.MethodOptions, g.base+tc[0], map[string]string{"Origin": "http://dash.example", "Access-Control-Request-Method": tc[1]})
		if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.StatusCode < 400 {
			t.Errorf("preflight %s %s: %d %v", tc[1], tc[0], resp.StatusCode, resp.Header)
		}
	}
	// An allow list echoes a listed origin and ignores the others; an
	// empty list turns CORS off.
	listed := startGateway(t, Config{CORSOrigins: []string{"http://dash.example"}})
	if got := request(t, http.MethodGet, listed.base+"/health", origin).Header; got.Get("Access-Control-Allow-Origin") != "http://dash.example" || got.Get("Vary") != "Origin" {
		t.Errorf("listed origin: %v", got)
	}
	if got := request(t, http.MethodGet, listed.base+"/health", map[string]string{"Origin": "http://evil.example"}).Header; got.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("unlisted origin: %v", got)
	}
	off := startGateway(t, Config{CORSOrigins: []string{}})
	if got := request(t, http.MethodGet, off.base+"/health", origin).Header; got.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS off: %v", got)
	}
}

// The first block on the wire is a whole event: the retry hint and any
// notes ride with it, never in a block without data.
func TestFirstBlockCarriesData(t *testing.T) {
	g := startGateway(t, Config{})
	g.publish(t, payload(1))
	for _, hdr := range []map[string]string{nil, {"Last-Event-ID": "999"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/v1/heartbeats/stream", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var block bytes.Buffer
		r := bufio.NewReader(resp.Body)
		for !bytes.HasSuffix(block.Bytes(), []byte("\n\n")) {
			b, err := r.ReadByte()
			if err != nil {
				t.Fatal(err)
			}
			block.WriteByte(b)
		}
		cancel()
		resp.Body.Close()
		s := block.String()
		if !strings.Contains(s, "\nretry: 3000\n") && !strings.HasPrefix(s, "retry: 3000\n") || !strings.Contains(s, "\ndata: "+payload(1)+"\n") {
			t.Errorf("first block (Last-Event-ID %v):\n%q", hdr, s)
		}
		if hdr != nil && !strings.HasPrefix(s, ": Last-Event-ID 999 is unknown") {
			t.Errorf("the note should open the first block:\n%q", s)
		}
	}
}

// A quiet telemetry stream gets keep-alive comments from the fan-out.
func TestQuietStreamGetsKeepAlives(t *testing.T) {
	g := startGateway(t, Config{KeepAlive: 100 * time.Millisecond})
	g.publish(t, payload(1))
	s := openStream(t, g.base+"/v1/heartbeats/stream", nil)
	s.next(t) // the snapshot
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatal("stream ended")
			}
			if len(ev.Comments) > 0 && ev.Comments[0] == "keep-alive" && ev.Data == "" {
				return
			}
		case <-deadline:
			t.Fatal("no keep-alive on a quiet stream")
		}
	}
}
