package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
)

func TestStreamHeadersAndLatestOnConnect(t *testing.T) {
	g := startGateway(t, Config{})
	for i := 1; i <= 3; i++ {
		g.publish(t, payload(i))
	}
	s := openStream(t, g.base+"/v1/heartbeats/stream", nil)
	h := s.resp.Header
	if s.resp.StatusCode != 200 || h.Get("Content-Type") != "text/event-stream" ||
		h.Get("Cache-Control") != "no-cache" || h.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("status %d headers %v", s.resp.StatusCode, h)
	}
	retry, comments, ev := s.preamble(t)
	if retry != "3000" || len(comments) != 0 {
		t.Fatalf("retry %q comments %q", retry, comments)
	}
	if ev.ID != "3" || ev.Event != "heartbeat" || ev.Data != payload(3) {
		t.Fatalf("first event %+v, want id 3 with the latest payload", ev)
	}
	g.publish(t, payload(4))
	if ev := s.next(t); ev.ID != "4" || ev.Data != payload(4) {
		t.Fatalf("live event %+v", ev)
	}
}

func TestManySubscribersGetIdenticalEvents(t *testing.T) {
	g := startGateway(t, Config{})
	g.publish(t, payload(0))
	streams := make([]*sseStream, 4)
	for i := range streams {
		streams[i] = openStream(t, g.base+"/v1/heartbeats/stream", nil)
		if ev := streams[i].next(t); ev.ID != "1" {
			t.Fatalf("stream %d first id %s", i, ev.ID)
		}
	}
	bustest.WaitFor(t, 2*time.Second, func() error {
		if n := g.fanout.numClients(); n != 4 {
			return fmt.Errorf("%d clients", n)
		}
		return nil
	})
	for n := 1; n <= 5; n++ {
		g.publish(t, payload(n))
	}
	var want []sseEvent
	for i, s := range streams {
		var got []sseEvent
		for range 5 {
			ev := s.next(t)
			ev.At = time.Time{}
			got = append(got, ev)
		}
		if i == 0 {
			want = got
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("stream %d got %v, stream 0 got %v", i, got, want)
		}
	}

	// One leaves; the others carry on and the fanout forgets it.
	streams[1].close()
	bustest.WaitFor(t, 2*time.Second, func() error {
		if n := g.fanout.numClients(); n != 3 {
			return fmt.Errorf("%d clients after a disconnect", n)
		}
		return nil
	})
	g.publish(t, payload(6))
	for i, s := range streams {
		if i == 1 {
			continue
		}
		if ev := s.next(t); ev.Data != payload(6) {
			t.Fatalf("stream %d after disconnect: %+v", i, ev)
		}
	}
}

// A subscriber that never reads must not delay the others and is dropped.
// Its writes may block for the whole write timeout (10 s); had the others
// waited on it, they would lag by that much, so a bound of half of it
// tells waiting from a busy machine's scheduling. The lag is logged.
func TestStuckSubscriberDoesNotDelayOthers(t *testing.T) {
	const writeTimeout = 10 * time.Second
	g := startGateway(t, Config{QueueSize: 4, WriteTimeout: writeTimeout})
	g.publish(t, payload(0))

	// The stuck client: a tiny receive buffer, a request, then no reads.
	conn := dialSmallWindow(t, g.Addr().String())
	fmt.Fprintf(conn, "GET /v1/heartbeats/stream HTTP/1.1\r\nHost: x\r\n\r\n")

	fast := []*sseStream{openStream(t, g.base+"/v1/heartbeats/stream", nil), openStream(t, g.base+"/v1/heartbeats/stream", nil)}
	for _, s := range fast {
		s.next(t)
	}
	bustest.WaitFor(t, 2*time.Second, func() error {
		if n := g.fanout.numClients(); n != 3 {
			return fmt.Errorf("%d clients", n)
		}
		return nil
	})

	// 64 KiB events, 200 of them: far more than the stuck client's socket
	// buffers and queue can hold.
	pad := strings.Repeat("x", 64<<10)
	const n = 200
	sent := make([]time.Time, n+1)
	var wg sync.WaitGroup
	maxLag := make([]time.Duration, len(fast))
	for i, s := range fast {
		wg.Go(func() {
			for k := 1; k <= n; k++ {
				ev := s.next(t)
				var p struct{ N int }
				if err := json.Unmarshal([]byte(ev.Data), &p); err != nil || p.N != k {
					t.Errorf("fast client %d: event %d: got n=%d err=%v", i, k, p.N, err)
					return
				}
				if lag := ev.At.Sub(sent[k]); lag > maxLag[i] {
					maxLag[i] = lag
				}
			}
		})
	}
	for k := 1; k <= n; k++ {
		sent[k] = time.Now()
		g.publish(t, fmt.Sprintf(`{"n":%d,"pad":%q}`, k, pad))
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	t.Logf("largest publish-to-read lag of the fast clients: %v", maxLag)
	for i, lag := range maxLag {
		if lag > writeTimeout/2 {
			t.Errorf("fast client %d lagged %v behind publish with a stuck peer", i, lag)
		}
	}
	// The stuck client is cut for its full queue, long before its write
	// deadline: 200 events of 64 KiB cannot fit 4 queue slots and a 4 KiB
	// socket buffer.
	bustest.WaitFor(t, 5*time.Second, func() error {
		if n := g.fanout.numClients(); n != 2 {
			return fmt.Errorf("stuck client still registered (%d clients)", n)
		}
		return nil
	})
	if g.fanout.kicked.Load() != 1 || g.fanout.dropped.Load() == 0 {
		t.Errorf("kicked %d clients, dropped %d events; want the stuck one kicked for its full queue", g.fanout.kicked.Load(), g.fanout.dropped.Load())
	}
}

func TestLastEventIDResume(t *testing.T) {
	cases := []struct {
		name        string
		header      map[string]string
		query       string
		wantIDs     []string
		wantComment string
	}{
		{name: "within history", header: map[string]string{"Last-Event-ID": "7"}, wantIDs: []string{"8", "9", "10"}},
		{name: "query form", query: "?lastEventId=8", wantIDs: []string{"9", "10"}},
		{name: "oldest kept minus one", header: map[string]string{"Last-Event-ID": "5"}, wantIDs: []string{"6", "7", "8", "9", "10"}},
		{name: "older than history", header: map[string]string{"Last-Event-ID": "2"}, wantIDs: []string{"10"}, wantComment: "older than the history"},
		{name: "from the future", header: map[string]string{"Last-Event-ID": "999"}, wantIDs: []string{"10"}, wantComment: "unknown"},
		{name: "malformed", header: map[string]string{"Last-Event-ID": "abc"}, wantIDs: []string{"10"}, wantComment: "malformed Last-Event-ID"},
		{name: "negative", header: map[string]string{"Last-Event-ID": "-3"}, wantIDs: []string{"10"}, wantComment: "malformed Last-Event-ID"},
		{name: "the whole history", query: "?history=all", wantIDs: []string{"6", "7", "8", "9", "10"}},
		{name: "Last-Event-ID wins over history=all", query: "?history=all", header: map[string]string{"Last-Event-ID": "8"}, wantIDs: []string{"9", "10"}},
		{name: "unknown history", query: "?history=some", wantIDs: []string{"10"}, wantComment: "history=\"some\" ignored"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, Config{History: 5})
			for i := 1; i <= 10; i++ {
				g.publish(t, payload(i))
			}
			s := openStream(t, g.base+"/v1/heartbeats/stream"+tc.query, tc.header)
			if s.resp.StatusCode != 200 {
				t.Fatalf("status %d", s.resp.StatusCode)
			}
			_, comments, first := s.preamble(t)
			got := []string{first.ID}
			for len(got) < len(tc.wantIDs) {
				got = append(got, s.next(t).ID)
			}
			if strings.Join(got, ",") != strings.Join(tc.wantIDs, ",") {
				t.Fatalf("ids %v, want %v", got, tc.wantIDs)
			}
			joined := strings.Join(comments, "|")
			if tc.wantComment == "" && joined != "" || !strings.Contains(joined, tc.wantComment) {
				t.Fatalf("comments %q, want one containing %q", joined, tc.wantComment)
			}
			// Then the live stream continues.
			g.publish(t, payload(100))
			if ev := s.next(t); ev.Data != payload(100) {
				t.Fatalf("live event %+v", ev)
			}
			s.close()
		})
	}
}

func TestKeepAliveWhileQuiet(t *testing.T) {
	g := startGateway(t, Config{KeepAlive: 50 * time.Millisecond})
	s := openStream(t, g.base+"/v1/heartbeats/stream", nil)
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-s.events:
			for _, c := range ev.Comments {
				if c == "keep-alive" {
					return
				}
			}
		case <-deadline:
			t.Fatal("no keep-alive comment")
		}
	}
}

func TestForeignHiveTelemetryIgnored(t *testing.T) {
	g := startGateway(t, Config{HiveID: "mine"})
	msg := &nats.Msg{Subject: wire.SubjectTelemetry, Data: []byte(payload(1)), Header: nats.Header{}}
	msg.Header.Set(wire.HeaderHiveID, "other")
	if err := g.pub.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	g.publish(t, payload(2))
	s := openStream(t, g.base+"/v1/heartbeats/stream", nil)
	if ev := s.next(t); ev.Data != payload(2) || ev.ID != "1" {
		t.Fatalf("got %+v; the other hive's event must not be in the stream", ev)
	}
}

func TestShutdownEndsStreamsAfterQueuedEvents(t *testing.T) {
	g := startGateway(t, Config{})
	g.publish(t, payload(1))
	s := openStream(t, g.base+"/v1/heartbeats/stream", nil)
	s.next(t)
	g.publish(t, payload(2))
	g.stop()
	var last sseEvent
	for ev := range s.events {
		if ev.Data != "" {
			last = ev
		}
	}
	if last.Data != payload(2) {
		t.Fatalf("last event before the end %+v", last)
	}
}

// Every connection's resources go away with it: after many cycles no
// client is registered and no goroutine is left behind.
func TestConnectDisconnectCyclesLeakNothing(t *testing.T) {
	g := startGateway(t, Config{})
	g.publish(t, payload(1))
	tr := &http.Transport{}
	client := &http.Client{Transport: tr}
	before := goleak.IgnoreCurrent()
	for i := range 1000 {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.base+"/v1/heartbeats/stream", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
			if strings.HasPrefix(line, "data: ") {
				break
			}
		}
		cancel()
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	tr.CloseIdleConnections()
	bustest.WaitFor(t, 5*time.Second, func() error {
		if n := g.fanout.numClients(); n != 0 {
			return fmt.Errorf("%d clients still registered", n)
		}
		return nil
	})
	bustest.WaitFor(t, 5*time.Second, func() error {
		return goleak.Find(before)
	})
}

func TestHealthAndJSONErrors(t *testing.T) {
	g := startGateway(t, Config{})
	cases := []struct {
		method, path string
		status       int
		body, ctype  string
	}{
		{"GET", "/health", 200, "ok", "text/plain; charset=utf-8"},
		{"POST", "/health", 405, `{"error":"method POST not allowed on /health"}`, "application/json; charset=utf-8"},
		{"GET", "/no/such/route", 404, `{"error":"no route GET /no/such/route"}`, "application/json; charset=utf-8"},
		{"DELETE", "/v1/heartbeats/stream", 405, `{"error":"method DELETE not allowed on /v1/heartbeats/stream"}`, "application/json; charset=utf-8"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, g.base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(b) != tc.body || resp.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s %s = %d %q (%s), want %d %q (%s)", tc.method, tc.path, resp.StatusCode, b,
				resp.Header.Get("Content-Type"), tc.status, tc.body, tc.ctype)
		}
	}
}
