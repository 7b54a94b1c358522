package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive/bus/bustest"
)

// Streams are written without net/http (hijacked), and a drain's write
// deadline also binds the direct writes after it: a stream must live on
// once every deadline it was ever given has passed.
func TestStreamOutlivesTheWriteTimeout(t *testing.T) {
	// Long enough that no write runs into its own deadline on a busy
	// machine (the runtime checks it before the system call).
	const writeTimeout = 500 * time.Millisecond
	g := startGateway(t, Config{WriteTimeout: writeTimeout})
	g.publish(t, payload(1))
	s := openStream(t, g.base+"/v1/heartbeats/stream", nil)
	s.next(t)
	time.Sleep(3 * writeTimeout) // not a margin: the deadlines must be in the past
	for i := 2; i <= 4; i++ {
		g.publish(t, payload(i))
		if ev := s.next(t); ev.Data != payload(i) {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
}

// A client that stops reading fills its socket: the shard's write stalls,
// the rest goes out from the stream's own goroutine with later events
// queued behind it, and once the client reads again it gets every event,
// whole and in order, and is written directly again.
func TestSlowReaderGetsEveryEventInOrder(t *testing.T) {
	g := startGateway(t, Config{QueueSize: 64})
	g.publish(t, payload(0))
	conn := dialSmallWindow(t, g.Addr().String())
	fmt.Fprintf(conn, "GET /v1/heartbeats/stream HTTP/1.1\r\nHost: x\r\n\r\n")
	bustest.WaitFor(t, 5*time.Second, func() error {
		if n := g.fanout.numClients(); n != 1 {
			return fmt.Errorf("%d clients", n)
		}
		return nil
	})

	// 4 KiB of receive window against a send buffer of at most 4 MiB
	// (tcp_wmem): 40 events of 256 KiB cannot all be taken at once.
	pad := strings.Repeat("y", 256<<10)
	n := 0
	for n < 40 && g.fanout.stalls.Load() == 0 {
		n++
		g.publish(t, fmt.Sprintf(`{"n":%d,"pad":%q}`, n, pad))
	}
	bustest.WaitFor(t, 5*time.Second, func() error {
		if g.fanout.stalls.Load() == 0 {
			return fmt.Errorf("no write stalled after %d events of 256 KiB", n)
		}
		return nil
	})

	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := readStream(t, conn, resp)
	if ev := s.next(t); ev.Data != payload(0) {
		t.Fatalf("first event %+v", ev)
	}
	for k := 1; k <= n; k++ {
		ev := s.next(t)
		var p struct {
			N   int
			Pad string
		}
		if err := json.Unmarshal([]byte(ev.Data), &p); err != nil || p.N != k || p.Pad != pad {
			t.Fatalf("event %d: n=%d, %d bytes of padding, err %v", k, p.N, len(p.Pad), err)
		}
	}
	if k, d := g.fanout.kicked.Load(), g.fanout.dropped.Load(); k != 0 || d != 0 {
		t.Fatalf("kicked %d, dropped %d: the queue had room for every event", k, d)
	}
	bustest.WaitFor(t, 5*time.Second, func() error {
		for _, sh := range g.fanout.shards {
			for _, c := range sh.snapshot(nil) {
				c.mu.Lock()
				direct := c.direct
				c.mu.Unlock()
				if !direct {
					return fmt.Errorf("stream still queued")
				}
			}
		}
		return nil
	})
	g.publish(t, payload(99))
	if ev := s.next(t); ev.Data != payload(99) {
		t.Fatalf("after catching up: %+v", ev)
	}
}

// HTTP/1.0 has no chunks: the events go out as they are and the stream
// ends with the connection. HTTP/1.1 streams end with the last chunk, so
// a client reads a clean end, not a cut connection.
func TestStreamsEndCleanlyOnShutdown(t *testing.T) {
	g := startGateway(t, Config{})
	g.publish(t, payload(1))

	conn, err := net.Dial("tcp", g.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	fmt.Fprintf(conn, "GET /v1/heartbeats/stream HTTP/1.0\r\n\r\n")
	old, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(old.TransferEncoding) != 0 || !old.Close || old.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("HTTP/1.0 answer: transfer encoding %v, close %v, headers %v", old.TransferEncoding, old.Close, old.Header)
	}
	oldEvents := readStream(t, conn, old)
	if ev := oldEvents.next(t); ev.Data != payload(1) {
		t.Fatalf("HTTP/1.0 first event %+v", ev)
	}

	resp, err := http.Get(g.base + "/v1/heartbeats/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("HTTP/1.1 transfer encoding %v", resp.TransferEncoding)
	}
	bustest.WaitFor(t, 5*time.Second, func() error {
		if n := g.fanout.numClients(); n != 2 {
			return fmt.Errorf("%d clients", n)
		}
		return nil
	})
	g.publish(t, payload(2))
	g.stop()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("HTTP/1.1 stream cut, not ended: %v after %q", err, body)
	}
	if !strings.Contains(string(body), "data: "+payload(2)+"\n") {
		t.Fatalf("HTTP/1.1 stream ended without the last event: %q", body)
	}
	var last sseEvent
	for ev := range oldEvents.events {
		last = ev
	}
	if last.Data != payload(2) {
		t.Fatalf("HTTP/1.0 stream's last event %+v", last)
	}
}

// dialSmallWindow connects with a 4 KiB receive buffer, so that a client
// that does not read stops the sender quickly.
func dialSmallWindow(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		_ = c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// readStream parses an SSE response read off conn; closing the stream
// closes conn (a body read off a bare connection reads to its end on
// Close).
func readStream(t *testing.T, conn net.Conn, resp *http.Response) *sseStream {
	s := &sseStream{resp: resp, events: make(chan sseEvent, 1024), cancel: func() { _ = conn.Close() }, done: make(chan struct{})}
	go s.read()
	t.Cleanup(s.close)
	return s
}

// Should the listener fail, Run returns its error, and the telemetry
// streams, which net/http no longer owns, still end cleanly rather than
// being left open with their goroutines.
func TestListenerFailureEndsTheStreams(t *testing.T) {
	b := bustest.Start(t)
	g, err := New(Config{Listen: "127.0.0.1:0", HiveID: "h1", FirstEventID: 1}, b, bustest.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Run(context.Background()) }()
	<-g.Ready()
	resp, err := http.Get("http://" + g.Addr().String() + "/v1/heartbeats/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	bustest.WaitFor(t, 5*time.Second, func() error {
		if n := g.fanout.numClients(); n != 1 {
			return fmt.Errorf("%d clients", n)
		}
		return nil
	})

	_ = g.ln.Listener.Close()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "serve") {
			t.Fatalf("Run returned %v, want the listener's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still running with its listener closed")
	}
	ended := make(chan error, 1)
	go func() { _, err := io.ReadAll(resp.Body); ended <- err }()
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("stream cut, not ended: %v", err)
		}
	case <-time.After(10 * time.Second):
		resp.Body.Close()
		t.Fatal("stream still open after Run returned")
	}
}
