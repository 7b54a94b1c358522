package gateway

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
)

const jobID = "job-0b5e9d2c-1f0a-4c3e-9a7b-2d4f6e8a0c1e"

func post(t *testing.T, u, ctype string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, body)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// respond answers subject with fn's bytes.
func respond(t *testing.T, nc *bus.Conn, subject string, fn func(*nats.Msg) string) {
	t.Helper()
	if _, err := nc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond([]byte(fn(m))) }); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
}

func TestCreateJobInputs(t *testing.T) {
	g := startGateway(t, Config{})
	var forwarded []string
	respond(t, g.pub, wire.SubjectJobsCreate, func(m *nats.Msg) string {
		forwarded = append(forwarded, string(m.Data))
		if strings.Contains(string(m.Data), `"busy"`) {
			return `{"error":"too many jobs","code":"busy","retry_after":1}`
		}
		if strings.Contains(string(m.Data), `"infer"`) {
			return `{"error":"invalid operation: operation \"infer\" belongs to the Queen","code":"invalid"}`
		}
		return `{"job_id":"` + jobID + `","sse_url":"/v1/jobs/` + jobID + `/stream"}`
	})
	cases := []struct {
		name, ctype, body string
		status            int
		want              string
	}{
		{"ok", "application/json", `{"operation":"model_list","hive_id":"h"}`, 200, `{"job_id":"` + jobID + `","sse_url":"/v1/jobs/` + jobID + `/stream"}`},
		{"charset ok", "application/json; charset=utf-8", `{"operation":"model_list","hive_id":"h"}`, 200, jobID},
		{"no content type", "", `{"operation":"x"}`, 415, "application/json"},
		{"text", "text/plain", `{"operation":"x"}`, 415, "application/json"},
		{"utf-16", "application/json; charset=utf-16", `{"operation":"x"}`, 415, "utf-8 only"},
		{"malformed", "application/json", `{"operation":`, 400, "malformed JSON"},
		{"not an object", "application/json", `[1]`, 400, "malformed JSON"},
		{"no operation", "application/json", `{"hive_id":"h"}`, 400, "needs an"},
		{"operation type", "application/json", `{"operation":1}`, 400, "needs an"},
		{"queen op", "application/json", `{"operation":"infer"}`, 400, "belongs to the Queen"},
		{"busy", "application/json", `{"operation":"busy"}`, 503, "too many jobs"},
		{"huge", "application/json", `{"operation":"x","pad":"` + strings.Repeat("a", 1<<20) + `"}`, 413, "larger than"},
	}
	for _, tc := range cases {
		resp, body := post(t, g.base+"/v1/jobs", tc.ctype, strings.NewReader(tc.body))
		var e apiError
		isErr := json.Unmarshal([]byte(body), &e) == nil && e.Error != ""
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.want) || (tc.status != 200) != isErr {
			t.Errorf("%s: %d %.200s", tc.name, resp.StatusCode, body)
		}
		if tc.name == "busy" && resp.Header.Get("Retry-After") != "1" {
			t.Errorf("busy: Retry-After %q", resp.Header.Get("Retry-After"))
		}
	}
	if len(forwarded) != 4 {
		t.Errorf("%d bodies reached the jobs module, want 4 (ok, charset, queen op, busy)", len(forwarded))
	}
}

func TestJobStreamReplayThenLive(t *testing.T) {
	g := startGateway(t, Config{KeepAlive: 50 * time.Millisecond})
	ev := func(seq int, text, end string) wire.JobEvent { return wire.JobEvent{Seq: seq, Text: text, End: end} }
	replayed := make(chan struct{})
	var once sync.Once
	respond(t, g.pub, wire.SubjectJobsReplay, func(m *nats.Msg) string {
		var ref wire.JobRef
		_ = json.Unmarshal(m.Data, &ref)
		if ref.JobID != jobID {
			return `{"error":"job not found","code":"not_found"}`
		}
		defer once.Do(func() { close(replayed) })
		b, _ := json.Marshal(wire.JobReplay{JobID: jobID, Events: []wire.JobEvent{ev(1, "one\n", ""), ev(2, "two", "")}})
		return string(b)
	})
	resp, err := http.Get(g.base + "/v1/jobs/" + jobID + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The stream's connection serves nothing after it: the client must
	// not pool it.
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || !resp.Close {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	<-replayed
	// Live events: 2 again (already replayed), then 3, a quiet spell, the end.
	pub := func(e wire.JobEvent) {
		b, _ := json.Marshal(e)
		_ = g.pub.Publish(wire.JobEventsSubject(jobID), b)
	}
	pub(ev(2, "two", ""))
	pub(ev(3, "three", ""))
	// A quiet spell: read until the stream's keep-alive, then end the job.
	var got strings.Builder
	r := bufio.NewReader(resp.Body)
	for !strings.Contains(got.String(), ": keep-alive\n\n") {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended before a keep-alive: %v\n%q", err, got.String())
		}
		got.WriteString(line)
	}
	pub(ev(4, "", "[DONE]"))
	rest, _ := io.ReadAll(r)
	got.Write(rest)
	want := "data: one\ndata: \n\ndata: two\n\ndata: three\n\n"
	if got := got.String(); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "data: [DONE]\n\n") {
		t.Fatalf("stream:\n%q", got)
	}
	if strings.Count(got.String(), "data: two") != 1 {
		t.Fatalf("a replayed event was sent twice:\n%q", got.String())
	}
}

func TestJobRoutesUnknownIDs(t *testing.T) {
	g := startGateway(t, Config{})
	respond(t, g.pub, wire.SubjectJobsReplay, func(*nats.Msg) string { return `{"error":"job not found","code":"not_found"}` })
	respond(t, g.pub, wire.SubjectJobsCancel, func(m *nats.Msg) string { return `{"error":"job not found or already finished","code":"not_found"}` })
	for _, path := range []string{"/v1/jobs/" + jobID + "/stream", "/v1/jobs/nope/stream", "/v1/jobs/job-x.%3E/stream"} {
		code, body, ctype := get(t, g.base+path)
		if code != 404 || !strings.HasPrefix(ctype, "application/json") || !strings.Contains(body, `"error"`) {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	for _, id := range []string{jobID, "nope", "job-*"} {
		req, _ := http.NewRequest(http.MethodDelete, g.base+"/v1/jobs/"+id, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || !strings.Contains(string(b), `"error"`) {
			t.Errorf("DELETE %s: %d %s", id, resp.StatusCode, b)
		}
	}
}

func TestJobsModuleAbsentIs503(t *testing.T) {
	g := startGateway(t, Config{})
	resp, body := post(t, g.base+"/v1/jobs", "application/json", strings.NewReader(`{"operation":"model_list"}`))
	if resp.StatusCode != 503 || !strings.Contains(body, "jobs unavailable") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	resp, body = post(t, g.base+"/v1/shutdown", "application/json", nil)
	if resp.StatusCode != 503 {
		t.Fatalf("shutdown without a handler: %d %s", resp.StatusCode, body)
	}
}

// Live events lost on the way (a job outran a slow client) are taken from
// the replay: a gap is filled at once, a lost end marker at the next
// keep-alive.
func TestJobStreamRecoversLostLiveEvents(t *testing.T) {
	g := startGateway(t, Config{KeepAlive: 50 * time.Millisecond})
	kept := []wire.JobEvent{{Seq: 1, Text: "one"}}
	var mu sync.Mutex
	respond(t, g.pub, wire.SubjectJobsReplay, func(*nats.Msg) string {
		mu.Lock()
		defer mu.Unlock()
		b, _ := json.Marshal(wire.JobReplay{JobID: jobID, Events: kept})
		return string(b)
	})
	resp, err := http.Get(g.base + "/v1/jobs/" + jobID + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	mu.Lock()
	kept = append(kept, wire.JobEvent{Seq: 2, Text: "two"}, wire.JobEvent{Seq: 3, Text: "three"})
	mu.Unlock()
	// Only 3 arrives live; 2 was lost.
	// The stream subscribed before it asked for the replay, which came
	// before the headers: this one is live.
	b, _ := json.Marshal(wire.JobEvent{Seq: 3, Text: "three"})
	_ = g.pub.Publish(wire.JobEventsSubject(jobID), b)
	// The end marker never arrives live at all.
	mu.Lock()
	kept = append(kept, wire.JobEvent{Seq: 4, End: "[DONE]"})
	mu.Unlock()
	body, _ := io.ReadAll(resp.Body)
	got := strings.ReplaceAll(string(body), ": keep-alive\n\n", "")
	if got != "data: one\n\ndata: two\n\ndata: three\n\ndata: [DONE]\n\n" {
		t.Fatalf("stream %q", got)
	}
}

// Narration reaches clients without ANSI escapes unless they ask.
func TestJobStreamANSIOnRequest(t *testing.T) {
	g := startGateway(t, Config{})
	text := "\x1b[1mrbee_hive::job_router\x1b[0m \x1b[2mroute_job\x1b[0m\nExecuting operation: model_list\n"
	respond(t, g.pub, wire.SubjectJobsReplay, func(*nats.Msg) string {
		b, _ := json.Marshal(wire.JobReplay{JobID: jobID, Events: []wire.JobEvent{{Seq: 1, Text: text}, {Seq: 2, End: "[DONE]"}}})
		return string(b)
	})
	for query, wantANSI := range map[string]bool{"": false, "?ansi=1": true} {
		code, body, _ := get(t, g.base+"/v1/jobs/"+jobID+"/stream"+query)
		if code != 200 || strings.Contains(body, "\x1b") != wantANSI || !strings.Contains(body, "route_job") || !strings.HasSuffix(body, "data: [DONE]\n\n") {
			t.Errorf("stream%s: %d %q", query, code, body)
		}
	}
}
