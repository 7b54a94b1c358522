package client_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive/client"
)

var hiveBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hive-client-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hiveBin = filepath.Join(dir, "hive")
	cmd := exec.Command("go", "build", "-o", hiveBin, "../cmd/hive")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build hive: %v\n%s", err, b)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// hive runs the real binary on port (0 = any) and returns its base URL and
// NATS URL once it listens, and a stop function.
func hive(t *testing.T, port string, env []string, args ...string) (base, natsURL string, stop func()) {
	t.Helper()
	cmd := exec.Command(hiveBin, append([]string{"--port", port, "--nats-listen", "127.0.0.1:0", "--queen-url", "", "--state-dir", t.TempDir(),
		"--cgroup-root", "", "--log-format", "json", "--hive-id", "client-test", "--telemetry-interval", "100ms"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var b, n string
		for sc.Scan() {
			l := sc.Text()
			if i := strings.Index(l, `"msg":"gateway listening"`); i >= 0 {
				a := l[strings.Index(l, `"addr":"`)+8:]
				b = "http://127.0.0.1:" + a[strings.LastIndex(a[:strings.Index(a, `"`)], ":")+1:strings.Index(a, `"`)]
			}
			if i := strings.Index(l, `"url":"nats://`); i >= 0 {
				n = l[i+7 : i+7+strings.Index(l[i+7:], `"`)]
			}
			if b != "" && n != "" {
				found <- [2]string{b, n}
				b, n = "", ""
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)
	select {
	case u := <-found:
		return u[0], u[1], stop
	case <-time.After(10 * time.Second):
		t.Fatal("hive not listening after 10 s")
	}
	return "", "", stop
}

// cutter is a TCP proxy whose connections the test can cut, as a network
// would.
type cutter struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutter(t *testing.T, target string) *cutter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{ln: ln}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", strings.TrimPrefix(target, "http://"))
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); c.cut() })
	return c
}

func (c *cutter) url() string { return "http://" + c.ln.Addr().String() }

func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.conns {
		n.Close()
	}
	c.conns = nil
}

// collect runs s until it has delivered n events after the call, or fails.
func collect(t *testing.T, events <-chan client.Event, n int) []client.Event {
	t.Helper()
	var out []client.Event
	for len(out) < n {
		select {
		case ev := <-events:
			out = append(out, ev)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d events", len(out), n)
		}
	}
	return out
}

func run(t *testing.T, s *client.Stream) <-chan client.Event {
	ch := make(chan client.Event, 256)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx, func(ev client.Event) { ch <- ev }) }()
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

// A cut connection is resumed with Last-Event-ID: nothing is lost, nothing
// repeated.
func TestStreamResumesAfterACut(t *testing.T) {
	base, _, _ := hive(t, "0", nil)
	proxy := newCutter(t, base)
	var mu sync.Mutex
	var notes []string
	connects := 0
	s := &client.Stream{URL: proxy.url(), MinBackoff: 20 * time.Millisecond,
		OnNote:    func(n string) { mu.Lock(); notes = append(notes, n); mu.Unlock() },
		OnConnect: func(err error) { mu.Lock(); connects++; mu.Unlock() }}
	events := run(t, s)
	before := collect(t, events, 3)
	proxy.cut()
	after := collect(t, events, 5)
	all := append(before, after...)
	for i := 1; i < len(all); i++ {
		if all[i].ID != all[i-1].ID+1 {
			t.Fatalf("ids %d then %d across the cut", all[i-1].ID, all[i].ID)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notes) != 0 || connects < 2 {
		t.Fatalf("notes %q, %d connection events", notes, connects)
	}
	if all[0].Telemetry.HiveID != "client-test" {
		t.Fatalf("event %+v", all[0].Telemetry)
	}
}

// After the hive restarts, the client reconnects on its own; the new hive
// says the events in between are lost and carries on with larger ids.
func TestStreamAcrossARestart(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	base, _, stop := hive(t, port, nil)
	notes := make(chan string, 8)
	s := &client.Stream{URL: base, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		OnNote: func(n string) { notes <- n }}
	events := run(t, s)
	before := collect(t, events, 3)
	stop()
	hive(t, port, nil)
	after := collect(t, events, 2)
	if after[0].ID <= before[len(before)-1].ID {
		t.Fatalf("id %d after the restart, %d before", after[0].ID, before[len(before)-1].ID)
	}
	select {
	case n := <-notes:
		if !strings.Contains(n, "older than the history") {
			t.Fatalf("note %q", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no note that events were lost")
	}
}

func TestStreamToken(t *testing.T) {
	const token = "client-test-token-0123456789abcdef"
	base, _, _ := hive(t, "0", []string{"HIVE_API_TOKEN=" + token})
	// Without a token: the hive needs one (still ErrUnauthorized to a
	// caller that checks with errors.Is); with a wrong one: refused.
	if err := (&client.Stream{URL: base}).Run(context.Background(), func(client.Event) {}); err != client.ErrTokenNeeded || !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("without the token: %v", err)
	}
	if err := (&client.Stream{URL: base, Token: "wrong-token-0123456789abcdef"}).Run(context.Background(), func(client.Event) {}); err != client.ErrUnauthorized {
		t.Fatalf("with a wrong token: %v", err)
	}
	collect(t, run(t, &client.Stream{URL: base, Token: token}), 2)
}

func TestNATSOneHive(t *testing.T) {
	_, natsURL, _ := hive(t, "0", nil)
	ch := make(chan client.Event, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- (&client.NATS{URL: natsURL, HiveID: "client-test"}).Run(ctx, func(ev client.Event) {
			select {
			case ch <- ev:
			default:
			}
		})
	}()
	select {
	case ev := <-ch:
		if ev.Telemetry.HiveID != "client-test" || ev.Telemetry.Type != "telemetry" || ev.ID != 0 {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no telemetry over NATS")
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
}

// Run may not return while fn runs: a caller that reads what fn wrote
// once Run returns (hive watch --nats --once does) would race with it.
func TestNATSRunWaitsForItsCallback(t *testing.T) {
	_, natsURL, _ := hive(t, "0", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	entered, release := make(chan struct{}), make(chan struct{})
	calls, finished := 0, 0 // written by fn, read after Run returns
	done := make(chan error, 1)
	go func() {
		done <- (&client.NATS{URL: natsURL}).Run(ctx, func(client.Event) {
			calls++
			if calls == 1 {
				close(entered)
				<-release
			}
			finished++
		})
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no telemetry over NATS")
	}
	cancel()
	close(release)
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
	if calls != finished {
		t.Fatalf("Run returned with fn still running: %d calls, %d finished", calls, finished)
	}
}
