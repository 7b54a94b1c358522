package collector

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rbee/hive/bus/wire"
)

// A worker is starting until its health answers, ready while it does (and
// for UnresponsiveAfter after it stops), unresponsive then; one without a
// port is running. Each change is counted once.
func TestProberStates(t *testing.T) {
	var healthy atomic.Bool
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		if r.URL.Path != "/health" || !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	changes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c"}, []string{"state"})
	p := newProber(ReadinessConfig{Path: "/health", Timeout: time.Second, UnresponsiveAfter: 10 * time.Second}, slog.New(slog.DiscardHandler), changes, newResults())
	now := time.Unix(1000, 0)
	p.now = func() time.Time { return now }
	ws := func() []wire.ProcessStats {
		return []wire.ProcessStats{{PID: 10, Instance: port}, {PID: 11, Instance: "11"}}
	}
	// The second has no port: its instance is its pid.
	cs := []workerCounter{{port: portOf(port)}, {port: 0}}
	step := func(want string) {
		t.Helper()
		w := ws()
		p.observe(w, cs)
		if w[0].State != want || w[1].State != wire.WorkerRunning {
			t.Fatalf("states %q, %q; want %q, running", w[0].State, w[1].State, want)
		}
		p.round(context.Background())
	}
	step(wire.WorkerStarting)
	step(wire.WorkerStarting) // the server said 503: not yet
	healthy.Store(true)
	p.round(context.Background())
	step(wire.WorkerReady)
	// A ready worker is asked again only after steadyProbe.
	n := asked.Load()
	p.round(context.Background())
	if asked.Load() != n {
		t.Error("a ready worker was asked again within steadyProbe")
	}
	healthy.Store(false)
	now = now.Add(steadyProbe)
	p.round(context.Background())
	now = now.Add(9 * time.Second)
	step(wire.WorkerReady) // failing for less than UnresponsiveAfter
	now = now.Add(2 * time.Second)
	step(wire.WorkerUnresponsive)
	healthy.Store(true)
	p.round(context.Background())
	step(wire.WorkerReady)
	for state, n := range map[string]float64{wire.WorkerStarting: 1, wire.WorkerReady: 2, wire.WorkerUnresponsive: 1, wire.WorkerRunning: 0} {
		if got := testutil.ToFloat64(changes.WithLabelValues(state)); got != n {
			t.Errorf("changes to %s: %v, want %v", state, got, n)
		}
	}
}

// A probe that does not answer in time fails without holding the round up
// past its timeout.
func TestProbeDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepts, never answers
		}
	}()
	p := newProber(ReadinessConfig{Path: "/health", Timeout: 200 * time.Millisecond}, slog.New(slog.DiscardHandler),
		prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c"}, []string{"state"}), newResults())
	if p.probe(context.Background(), ln.Addr().(*net.TCPAddr).Port) {
		t.Fatal("a silent worker was healthy")
	}
}

func newResults() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"result"})
}

// boundPort holds a TCP port bound and not listening: connecting to it is
// refused, and no other process can take it while the test runs.
func boundPort(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*syscall.SockaddrInet4).Port
}

// The kernel's listening sockets, IPv4 and IPv6, whatever the address;
// a port bound and not listening is not one.
func TestListeningPorts(t *testing.T) {
	var want []int
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", ":0"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Logf("%s: %v", addr, err) // a host without IPv6
			continue
		}
		defer ln.Close()
		want = append(want, ln.Addr().(*net.TCPAddr).Port)
	}
	bound := boundPort(t)
	var s portSet
	if err := listeningPorts(&s, make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}
	for _, p := range want {
		if !s.has(p) {
			t.Errorf("port %d listens and is not in the set", p)
		}
	}
	if s.has(bound) {
		t.Errorf("port %d is bound, not listening, and is in the set", bound)
	}
}

// A worker whose port nothing listens on (a model still loading) is
// starting, its probe answered without a connection; one whose server
// listens is asked.
func TestProberSkipsPortsNobodyListensOn(t *testing.T) {
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked.Add(1) }))
	defer srv.Close()
	up := srv.Listener.Addr().(*net.TCPAddr).Port
	results := newResults()
	p := newProber(ReadinessConfig{Path: "/health", Timeout: time.Second, UnresponsiveAfter: 10 * time.Second}, slog.New(slog.DiscardHandler),
		prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c"}, []string{"state"}), results)
	ws := []wire.ProcessStats{{PID: 10}, {PID: 11}}
	cs := []workerCounter{{port: boundPort(t)}, {port: up}}
	for range 3 {
		p.observe(ws, cs)
		p.round(context.Background())
	}
	p.observe(ws, cs)
	if ws[0].State != wire.WorkerStarting || ws[1].State != wire.WorkerReady {
		t.Fatalf("states %q %q, want starting, ready", ws[0].State, ws[1].State)
	}
	if n := testutil.ToFloat64(results.WithLabelValues(probeNotListening)); n != 3 {
		t.Errorf("%v probes answered from the listening sockets, want 3", n)
	}
	if n := testutil.ToFloat64(results.WithLabelValues(probeOK)); n != 1 || asked.Load() != 1 {
		t.Errorf("%v probes ok, %d asked of the server; want 1 (then steady)", n, asked.Load())
	}
}
