package main

// The flood attacks of issue 8 (3 and 9), against the real binary on
// loopback: each bounded in connections, bytes and time, each run while
// legitimate clients are watched.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rbee/hive/bus/wire"
)

// rawNATS opens a NATS connection by hand and sends CONNECT; with
// rcvbuf > 0 its receive buffer is that small, as an attacker that never
// reads would have it.
func rawNATS(t *testing.T, url string, rcvbuf int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	if rcvbuf > 0 {
		_ = c.(*net.TCPConn).SetReadBuffer(rcvbuf)
	}
	_, _ = c.Write([]byte("CONNECT {\"verbose\":false,\"pedantic\":false}\r\n"))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// gaps records when SSE data events arrive, for gap checks over a window.
type gaps struct {
	mu sync.Mutex
	at []time.Time
}

func watchSSE(t *testing.T, url string) *gaps {
	g := &gaps{}
	sse := openSSE(t, url)
	go func() {
		for ev := range sse.frames {
			if ev.Data != "" {
				g.mu.Lock()
				g.at = append(g.at, ev.At)
				g.mu.Unlock()
			}
		}
	}()
	return g
}

// control is the longest gap of the stream over a quiet window, measured
// before the attack: what this machine's load alone costs the stream, so
// a busy CI machine does not fail the attack's check.
func (g *gaps) control(window time.Duration) time.Duration {
	start := time.Now()
	time.Sleep(window)
	worst, _ := g.maxGap(start, time.Now())
	return worst
}

// maxGap is the longest wait between events from..to, counting the edges.
func (g *gaps) maxGap(from, to time.Time) (time.Duration, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	prev, worst, n := from, time.Duration(0), 0
	for _, at := range g.at {
		if at.Before(from) {
			continue
		}
		if at.After(to) {
			break
		}
		worst = max(worst, at.Sub(prev))
		prev = at
		n++
	}
	return max(worst, to.Sub(prev)), n
}

// Attack 3: anonymous NATS readers that subscribe thousands of times and
// never read. The tick and every SSE client keep their 1 s cadence; a
// legitimate observer keeps receiving; the attackers are cut.
func TestAttackNATSObserversCannotStallTelemetry(t *testing.T) {
	h := startHive(t)
	g := watchSSE(t, h.httpBase+"/v1/heartbeats/stream")
	legit, err := nats.Connect(h.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer legit.Close()
	var got atomic.Int64
	if _, err := legit.Subscribe(wire.SubjectTelemetry, func(*nats.Msg) { got.Add(1) }); err != nil {
		t.Fatal(err)
	}
	_ = legit.Flush()
	control := g.control(3 * time.Second)

	const window = 8 * time.Second
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var wg sync.WaitGroup
	// The attack: 4 connections x 50,000 SUBs, never reading.
	for range 4 {
		c := rawNATS(t, h.natsURL, 4096)
		wg.Go(func() {
			var b strings.Builder
			for sid := 1; sid <= 50000 && ctx.Err() == nil; sid++ {
				fmt.Fprintf(&b, "SUB %s %d\r\n", wire.SubjectTelemetry, sid)
				if sid%500 == 0 {
					_ = c.SetWriteDeadline(time.Now().Add(time.Second))
					if _, err := c.Write([]byte(b.String())); err != nil {
						return // the hive closed it
					}
					b.Reset()
				}
			}
		})
	}
	// And the one that stays under every cap: 8 x 100 subscriptions,
	// never reading, for the whole window.
	for range 8 {
		c := rawNATS(t, h.natsURL, 4096)
		var b strings.Builder
		for sid := 1; sid <= 100; sid++ {
			fmt.Fprintf(&b, "SUB %s %d\r\n", wire.SubjectTelemetry, sid)
		}
		_, _ = c.Write([]byte(b.String()))
	}
	<-ctx.Done()
	wg.Wait()
	end := time.Now()
	before := got.Load()
	worst, n := g.maxGap(start, end)
	t.Logf("during %v of attack: %d SSE events, longest gap %v (control %v); the observer got %d messages in all",
		window, n, worst.Round(time.Millisecond), control.Round(time.Millisecond), before)
	// A stall behind the flood would cost the write deadline (2 s) or
	// more; one tick beyond the quiet control is the machine's own load.
	if limit := control + time.Second; worst > limit {
		t.Errorf("SSE gap of %v during the attack (limit %v: the control's %v and one tick)", worst, limit, control)
	}
	// Subscriptions past the per-connection cap were refused.
	if h.countLogs("maximum subscriptions exceeded") == 0 {
		t.Error("no subscription was refused past --nats max subs")
	}
	// The legitimate observer is still served.
	waitUntil(t, 5*time.Second, func() bool { return got.Load() > before })
}

// Attack 3: a client looping on a forbidden publish is refused each time,
// but the log gets a bounded number of lines.
func TestAttackNATSPermissionViolationLogIsBounded(t *testing.T) {
	h := startHive(t)
	c := rawNATS(t, h.natsURL, 0)
	// Read every answer as it comes, so that the hive has no reason to
	// cut this client as slow: the bound must come from the logger.
	pong := make(chan struct{})
	go func() {
		defer close(pong)
		sc := bufio.NewScanner(c)
		for sc.Scan() && sc.Text() != "PONG" {
		}
	}()
	var b strings.Builder
	for range 20000 {
		b.WriteString("PUB hive.shutdown 2\r\nhi\r\n")
	}
	b.WriteString("PING\r\n") // answered after every PUB before it
	start := time.Now()
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pong:
	case <-time.After(20 * time.Second):
		t.Fatal("no PONG after the publishes")
	}
	elapsed := time.Since(start)
	waitUntil(t, 5*time.Second, func() bool { return h.countLogs("Publish Violation") > 0 })
	lines := h.countLogs("Publish Violation")
	t.Logf("20000 forbidden publishes in %v: %d log lines", elapsed.Round(time.Millisecond), lines)
	if limit := 20 + int(5*elapsed.Seconds()) + 5; lines > limit || lines == 0 {
		t.Errorf("%d permission-violation log lines (want 1..%d)", lines, limit)
	}
	if code, _, _ := do(t, "GET", h.httpBase+"/health", nil, ""); code != 200 {
		t.Fatal("the hive stopped answering")
	}
}

// Observer credentials: with --nats-user, an anonymous client is refused
// and the user reads telemetry; past --nats-max-conns a client is refused.
func TestNATSObserverCredentialsAndConnCap(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("observer-secret-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHive(t, "--nats-user", "dash", "--nats-password-file", pw, "--nats-max-conns", "3")
	if nc, err := nats.Connect(h.natsURL, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("anonymous client accepted with --nats-user set")
	}
	var conns []*nats.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 3 {
		nc, err := nats.Connect(h.natsURL, nats.UserInfo("dash", "observer-secret-123"), nats.NoReconnect())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
	}
	sub, _ := conns[0].SubscribeSync(wire.SubjectTelemetry)
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("credentialed observer: %v", err)
	}
	if nc, err := nats.Connect(h.natsURL, nats.UserInfo("dash", "observer-secret-123"), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("a fourth connection was accepted with --nats-max-conns 3")
	}
	waitUntil(t, 5*time.Second, func() bool { return h.countLogs("maximum connections exceeded") > 0 })
	// The first three still work.
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("credentialed observer after the cap: %v", err)
	}
}

// Attack 9: a thousand connections sending a body one byte at a time, from
// another loopback address. Past the per-address cap they get a JSON 503 at
// once; the rest are cut at the body deadline; clients on other addresses
// keep working meanwhile; no connection stays open.
func TestAttackSlowBodiesAndConnectionFlood(t *testing.T) {
	h := startHiveEnv(t, []string{"HIVE_HTTP_BODY_TIMEOUT=1s"}, "--http-max-conns-per-ip", "32")
	g := watchSSE(t, h.httpBase+"/v1/heartbeats/stream")
	control := g.control(3 * time.Second)
	addr := strings.TrimPrefix(h.httpBase, "http://")
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	const n = 1000
	var rejected, timedOut, closed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		wg.Go(func() {
			// Send the head, then a byte at a time; between bytes, see
			// whether the hive answered or closed. Once it has, only read:
			// writing to a closed socket would turn its answer into a reset.
			_, _ = c.Write([]byte("POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"))
			var got []byte
			buf := make([]byte, 512)
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
				_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				k, err := c.Read(buf)
				got = append(got, buf[:k]...)
				if err == nil {
					continue
				}
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					if len(got) == 0 {
						_, _ = c.Write([]byte(" "))
					}
					continue
				}
				closed.Add(1) // EOF or reset: the hive closed it
				break
			}
			switch s := string(got); {
			case strings.HasPrefix(s, "HTTP/1.1 503") && strings.Contains(s, `{"error":"too many connections`):
				rejected.Add(1)
			case strings.HasPrefix(s, "HTTP/1.1 408") && strings.Contains(s, `"error"`):
				timedOut.Add(1)
			}
		})
	}
	// Meanwhile, from 127.0.0.1: health, a job, the stream.
	for range 5 {
		if code, _, _ := do(t, "GET", h.httpBase+"/health", nil, ""); code != 200 {
			t.Errorf("health during the flood: %d", code)
		}
	}
	id := postJob(t, h.httpBase, `{"operation":"model_list","hive_id":"h"}`)
	if end := lastLine(jobStream(t, h.httpBase, id)); end != wire.EndDone {
		t.Errorf("job during the flood: %s", end)
	}
	wg.Wait()
	end := time.Now()
	worst, events := g.maxGap(start, end)
	t.Logf("%d connections: %d answered 503, %d cut with 408, %d closed by the hive in %v; SSE: %d events, longest gap %v (control %v)",
		n, rejected.Load(), timedOut.Load(), closed.Load(), end.Sub(start).Round(time.Millisecond), events, worst.Round(time.Millisecond), control.Round(time.Millisecond))
	if closed.Load() != n {
		t.Errorf("%d of %d attack connections still open after 20 s", n-closed.Load(), n)
	}
	// A reset can overtake an answer; most must have been read.
	if rejected.Load() < n/2 || timedOut.Load() < 1 || rejected.Load()+timedOut.Load() > n {
		t.Errorf("answers: %d x 503, %d x 408 of %d", rejected.Load(), timedOut.Load(), n)
	}
	if limit := control + time.Second; worst > limit {
		t.Errorf("SSE gap of %v during the flood (limit %v: the control's %v and one tick)", worst, limit, control)
	}
}

// waitUntil polls cond every 10 ms until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
