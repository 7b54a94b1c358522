package main

// The hive's own findings of the third security round (issue 29), each
// against the real binary on loopback. SECURITY.md names them.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/internal/proctest"
	"github.com/rbee/hive/internal/tlsfiles/tlstest"
	"github.com/rbee/hive/modules/collector"
)

// startIdleWorkers starts n processes the pattern ^<name> matches, each a
// shell waiting on a sleep, with a --model of modelLen bytes: a host with
// many workers, at a fraction of the memory of real ones.
func startIdleWorkers(t *testing.T, name string, n, modelLen int) {
	t.Helper()
	model := strings.Repeat("m", modelLen)
	for i := range n {
		cmd := &exec.Cmd{Path: "/bin/sh", Args: []string{fmt.Sprintf("%s-%d", name, i), "-c", "sleep 600; exit 0", "sh",
			"--model", model, "--port", strconv.Itoa(20000 + i)}}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		})
	}
}

// rssBytes is a process's resident set from /proc/<pid>/status.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// openStuckStream opens a telemetry stream from local (a 127/8 address)
// that asks for the whole history and never reads.
func openStuckStream(t *testing.T, base, local, query string) net.Conn {
	t.Helper()
	u := strings.TrimPrefix(base, "http://")
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", u)
	if err != nil {
		t.Fatal(err)
	}
	// A small receive buffer, as a client that stopped reading has: the
	// hive's writes block early.
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(4096)
	}
	if _, err := fmt.Fprintf(c, "GET /v1/heartbeats/stream?%s HTTP/1.1\r\nHost: %s\r\n\r\n", query, u); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Item 2: ?history=all (or an old Last-Event-ID) from clients that never
// read made the hive copy the whole kept history per client: 112 such
// clients took it from 122 MB to 2.8 GB. The backlog is now written from
// the frames every client shares: 4 addresses × 112 stuck clients, with
// ~250 KB events and a full history, keep the hive's RSS within 50 MB of
// the same hive without them.
func TestAttackHistoryBacklogCopiesNothing(t *testing.T) {
	name := fmt.Sprintf("llm-worker-rss%d", os.Getpid())
	startIdleWorkers(t, name, 480, 256)
	h := startHive(t, "--worker-match", "^"+name, "--telemetry-interval", "100ms")
	pid := h.cmd.Process.Pid
	// The history holds 60 events; wait until it is full of large ones.
	var size int
	bustest.WaitFor(t, 60*time.Second, func() error {
		r := openSSE(t, h.httpBase+"/v1/heartbeats/stream?history=all")
		defer r.cancel()
		n := 0
		for ; n < 60; n++ {
			ev := r.next(t, 10*time.Second)
			size = len(ev.Data)
			if strings.Count(ev.Data, `"pid"`) < 470 {
				return fmt.Errorf("event %d has %d workers", n, strings.Count(ev.Data, `"pid"`))
			}
			if ev.ID != "" && n == 0 {
				if id, _ := strconv.Atoi(ev.ID); id < 60 {
					return fmt.Errorf("history holds %d events", id)
				}
			}
		}
		return nil
	})
	control := rssBytes(t, pid)
	for range 10 { // settle: a second of ticks with the history full
		time.Sleep(100 * time.Millisecond)
		control = max(control, rssBytes(t, pid))
	}
	queries := []string{"history=all", "lastEventId=1"}
	for a := range 4 {
		local := fmt.Sprintf("127.0.0.%d", 2+a)
		for i := range 112 {
			openStuckStream(t, h.httpBase, local, queries[i%2])
		}
	}
	bustest.WaitFor(t, 30*time.Second, func() error {
		_, body, _ := httpGet(t, h.httpBase+"/metrics")
		if v, _ := metricValue(body, "hive_sse_subscribers"); v < 448 {
			return fmt.Errorf("%v subscribers", v)
		}
		return nil
	})
	var peak int64
	for range 30 {
		peak = max(peak, rssBytes(t, pid))
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("events of %d KB, 60 kept: hive RSS %d MB without the stuck clients, at most %d MB with 448 of them",
		size>>10, control>>20, peak>>20)
	if peak-control > 50<<20 {
		t.Errorf("448 stuck history clients took the hive's RSS from %d MB to %d MB (bound: +50 MB)", control>>20, peak>>20)
	}
	// The hive still serves a reader.
	r := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
	defer r.cancel()
	if ev := r.next(t, 10*time.Second); strings.Count(ev.Data, `"pid"`) < 470 {
		t.Fatalf("a new reader's first event: %.200s", ev.Data)
	}
}

// startAtPID starts name with args at pid, through
// /proc/sys/kernel/ns_last_pid (root only): the kernel gives the next
// process the pid after the one written there, unless another process
// forks first, so it tries a few times. It returns nil when it could not.
func startAtPID(t *testing.T, pid int, name string, args ...string) *exec.Cmd {
	t.Helper()
	for range 50 {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0o644); err != nil {
			return nil
		}
		cmd := exec.Command(name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if cmd.Process.Pid == pid {
			t.Cleanup(func() {
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				_ = cmd.Wait()
			})
			return cmd
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
	return nil
}

// Item 5: stopping a worker the hive did not spawn went on signalling its
// pid for the whole grace: a process that took the pid after the worker
// exited (an attacker can cycle pids) was killed with its child. Now every
// signal goes to the process listed, by pidfd after its start time is
// checked: the newcomer at the worker's pid and its child survive.
func TestAttackStopSparesThePIDsNextOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("placing a process at a given pid needs root (ns_last_pid)")
	}
	name := fmt.Sprintf("llm-worker-reuse%d", os.Getpid())
	h := startHive(t, "--worker-match", "^"+name)
	// The worker takes a moment to end on SIGTERM, as a real one does: the
	// hive's first look finds it alive, and keeps looking.
	w := &exec.Cmd{Path: "/bin/sh", Args: []string{name, "-c", "trap 'sleep 0.2; exit 0' TERM; sleep 600 & wait"}}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	pid := w.Process.Pid
	exited := make(chan struct{})
	go func() { _ = w.Wait(); close(exited) }()
	t.Cleanup(func() { _ = w.Process.Kill(); <-exited })
	bustest.WaitFor(t, 20*time.Second, func() error {
		r := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
		defer r.cancel()
		if ev := r.next(t, 10*time.Second); !strings.Contains(ev.Data, fmt.Sprintf(`"pid":%d,`, pid)) {
			return fmt.Errorf("worker %d not in telemetry yet", pid)
		}
		return nil
	})
	id := postJob(t, h.httpBase, fmt.Sprintf(`{"operation":"worker_process_delete","hive_id":"h","pid":%d}`, pid))
	// The worker ends on the hive's SIGTERM; its pid goes at once to a
	// process that is no worker, with a child of its own.
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not end on SIGTERM")
	}
	n := startAtPID(t, pid, "/bin/sh", "-c", "sleep 600 & wait")
	if n == nil {
		t.Skip("another process took the pid first each time")
	}
	var child int
	for child == 0 { // the shell forks at once; until then it is alone
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if err != nil {
			break // gone: killed
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			child, _ = strconv.Atoi(f[0])
		}
	}
	lines := jobStream(t, h.httpBase, id)
	for _, p := range []int{pid, child} {
		if st := procState(p); st == "" || st == "Z" {
			t.Errorf("process %d (the newcomer at the worker's pid, or its child) was killed (state %q)\n%s", p, st, strings.Join(lines, "\n"))
		}
	}
	if !strings.Contains(strings.Join(lines, "\n"), fmt.Sprintf("Worker PID %d stopped", pid)) {
		t.Errorf("the stop did not finish as a success:\n%s", strings.Join(lines, "\n"))
	}
}

// procState is the state letter of /proc/<pid>/stat ("Z" for a zombie),
// "" once the process is gone.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+3 > len(b) {
		return ""
	}
	return string(b[i+2 : i+3])
}

// startTicksOf is a process's start time in clock ticks since boot.
func startTicksOf(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// Item 6: a planted workers.json named a root process (pid and start time
// right), a file elsewhere as its log and a cgroup to kill: the hive
// adopted it, would truncate the file at rotation and kill the cgroup on
// stop. Now an entry is taken back only when its process runs a worker
// binary of --worker-dir, its log lies in --worker-log-dir and its cgroup
// under --cgroup-root; the log says why one was not.
func TestAttackPlantedStateFileAdoptsNothing(t *testing.T) {
	stateDir, victimDir := t.TempDir(), t.TempDir()
	victim := victimDir + "/important.db"
	if err := os.WriteFile(victim, []byte(strings.Repeat("data", 1<<18)), 0o600); err != nil {
		t.Fatal(err)
	}
	root := startProc(t, "/bin/sleep", "600") // not a worker: the hive's pattern is another
	ticks := startTicksOf(t, root.Process.Pid)
	state := fmt.Sprintf(`{"version":1,"workers":[
		{"pid":%[1]d,"start_ticks":%[2]d,"port":9100,"worker_id":"w1","model":"m","binary":"/bin/sleep","log":%[3]q,"cgroup":"/sys/fs/cgroup/system.slice"},
		{"pid":%[1]d,"start_ticks":%[2]d,"port":9101,"worker_id":"w2","model":"m","binary":%[4]q,"log":%[5]q}]}`,
		root.Process.Pid, ticks, victim, binDir+"/llm-worker-rbee-cpu", stateDir+"/../x.log")
	if err := os.WriteFile(stateDir+"/workers.json", []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHive(t, "--state-dir", stateDir, "--worker-dir", binDir, "--worker-log-dir", t.TempDir(),
		"--worker-match", fmt.Sprintf("^llm-worker-none%d$", os.Getpid()))
	bustest.WaitFor(t, 10*time.Second, func() error {
		if n := h.countLogs("a worker in the state file was not taken back"); n != 2 {
			return fmt.Errorf("%d refusals logged", n)
		}
		return nil
	})
	log := h.logText()
	for _, why := range []string{`binary \"/bin/sleep\" is not a worker`, "does not run " + binDir + "/llm-worker-rbee-cpu"} {
		if !strings.Contains(log, why) {
			t.Errorf("the log does not say %q:\n%s", why, log)
		}
	}
	lines := jobStream(t, h.httpBase, postJob(t, h.httpBase, fmt.Sprintf(`{"operation":"worker_process_delete","hive_id":"h","pid":%d}`, root.Process.Pid)))
	if !strings.Contains(strings.Join(lines, "\n"), "not a worker") {
		t.Errorf("the planted process could be stopped:\n%s", strings.Join(lines, "\n"))
	}
	if st := procState(root.Process.Pid); st == "" || st == "Z" {
		t.Error("the planted root process was stopped")
	}
	if st, err := os.Stat(victim); err != nil || st.Size() != 1<<20 {
		t.Errorf("the file named as a log: %v, %v", st, err)
	}
}

// Item 6, and a newcomer's finding (issue 30, item 3): a state directory
// another user may write is refused at start with the reason, as is one
// that another hive holds (two hives on one state file adopted each
// other's workers); a state file another user may write is not read.
func TestStateDirIsOneHivesAlone(t *testing.T) {
	shared := t.TempDir()
	first := startHive(t, "--state-dir", shared)
	// Each must exit on its own; one that starts is cut after 20 s.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, hiveBin, "--port", "0", "--nats-listen", "", "--queen-url", "", "--state-dir", shared).CombinedOutput()
	want := fmt.Sprintf("worker state dir %s is in use by another hive (pid %d)", shared, first.cmd.Process.Pid)
	if err == nil || !strings.Contains(string(out), want) {
		t.Errorf("a second hive on %s: %v, want %q in\n%s", shared, err, want, out)
	}

	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	out, err = exec.CommandContext(ctx, hiveBin, "--port", "0", "--nats-listen", "", "--queen-url", "", "--state-dir", open).CombinedOutput()
	if err == nil || !strings.Contains(string(out), open+" is writable by group or others") {
		t.Errorf("a world-writable state dir: %v\n%s", err, out)
	}

	dir := t.TempDir()
	if err := os.WriteFile(dir+"/workers.json", []byte(`{"version":1,"workers":[]}`), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir+"/workers.json", 0o666); err != nil {
		t.Fatal(err)
	}
	h := startHive(t, "--state-dir", dir)
	bustest.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(h.logText(), "workers.json is writable by group or others") {
			return fmt.Errorf("no word of the open state file")
		}
		return nil
	})
}

// Item 6: a world-writable --worker-log-dir with a symlink planted for
// every log name made root chmod and append to the link's target. Now
// the spawn is refused with the reason and the target is untouched; a
// private log dir of the hive's own that others could read is made 0700.
func TestAttackPlantedLogSymlinks(t *testing.T) {
	logDir, victimDir := t.TempDir(), t.TempDir()
	victim := victimDir + "/target"
	if err := os.WriteFile(victim, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(logDir, 0o777); err != nil {
		t.Fatal(err)
	}
	for p := 9000; p <= 9999; p++ {
		if err := os.Symlink(victim, fmt.Sprintf("%s/worker-cpu-%d.log", logDir, p)); err != nil {
			t.Fatal(err)
		}
	}
	h := startHive(t, "--worker-dir", binDir, "--model-dir", t.TempDir(), "--worker-log-dir", logDir)
	lines := jobStream(t, h.httpBase, postJob(t, h.httpBase, `{"operation":"worker_spawn","hive_id":"h","model":"m","worker":"cpu","device":0}`))
	if all := strings.Join(lines, "\n"); !strings.Contains(all, logDir+" is writable by group or others") {
		t.Errorf("spawn into an open log dir:\n%s", all)
	}
	if st, err := os.Stat(victim); err != nil || st.Mode().Perm() != 0o644 || st.Size() != 4 {
		t.Errorf("the link's target: %v %v", st, err)
	}

	readable := t.TempDir()
	if err := os.Chmod(readable, 0o755); err != nil {
		t.Fatal(err)
	}
	h = startHive(t, "--worker-dir", binDir, "--model-dir", t.TempDir(), "--worker-log-dir", readable, "--stop-workers-on-exit")
	lines = jobStream(t, h.httpBase, postJob(t, h.httpBase, `{"operation":"worker_spawn","hive_id":"h","model":"m","worker":"cpu","device":0}`))
	killSpawnedAtEnd(t, lines)
	if lastLine(lines) != "[DONE]" {
		t.Fatalf("spawn: %s", strings.Join(lines, "\n"))
	}
	if st, _ := os.Stat(readable); st.Mode().Perm() != 0o700 {
		t.Errorf("log dir mode %04o after a spawn, want 0700", st.Mode().Perm())
	}
}

// Item 7: tls.client-allowed-sans matched any name of a certificate
// against any allowed entry: a certificate of the trusted CA whose common
// name (beside another DNS SAN), e-mail or URI SAN was queen.internal, or
// whose DNS SAN was "10.0.0.5", was granted control. Now each allowed
// entry matches names of its own type; the common name only counts for a
// certificate without SANs.
func TestAttackAllowedSANsMatchPerType(t *testing.T) {
	f := newTLSFixture(t)
	// With a token set, control needs the token or an allowed certificate
	// (without one, loopback alone controls).
	h := startHiveEnv(t, []string{"HIVE_API_TOKEN=" + e2eToken, "HIVE_TLS_CLIENT_ALLOWED_SANS=queen.internal,10.0.0.5"},
		"--tls-cert-file", f.certFile, "--tls-key-file", f.keyFile, "--tls-client-ca-file", f.caFile)
	cases := []struct {
		name string
		opts tlstest.Opts
		want int
	}{
		{"DNS SAN queen.internal", tlstest.Opts{DNS: []string{"queen.internal"}}, 200},
		{"IP SAN 10.0.0.5", tlstest.Opts{Names: []string{"10.0.0.5"}}, 200},
		{"legacy: common name only", tlstest.Opts{CommonName: "queen.internal"}, 200},
		{"common name beside another DNS SAN", tlstest.Opts{CommonName: "queen.internal", DNS: []string{"other.internal"}}, 403},
		{"e-mail SAN queen.internal", tlstest.Opts{CommonName: "x", Emails: []string{"queen.internal"}}, 403},
		{"URI SAN queen.internal", tlstest.Opts{CommonName: "x", URIs: []string{"queen.internal"}}, 403},
		{"DNS SAN 10.0.0.5", tlstest.Opts{CommonName: "x", DNS: []string{"10.0.0.5"}}, 403},
	}
	ct := map[string]string{"Content-Type": "application/json"}
	for _, c := range cases {
		c.opts.Client = true
		l := f.ca.Issue(t, c.opts)
		cert, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		code, body, err := call(f.client(t, "", &cert, ""), "POST", h.httpBase+"/v1/jobs", ct, `{"operation":"model_list","hive_id":"h"}`)
		if err != nil {
			t.Fatal(err)
		}
		if (code == 200) != (c.want == 200) {
			t.Errorf("%s: %d %s, want control %v", c.name, code, body, c.want == 200)
		}
	}
}

// Item 8: every failed TLS handshake made net/http write a plain-text line
// on stderr: 24,498 in 5.7 s, not JSON under --log-format json, not
// counted; journald then dropped the hive's own lines. Now they go through
// the hive's logger at a bounded rate and are all counted.
func TestAttackHandshakeErrorsAreRateLimited(t *testing.T) {
	f := newTLSFixture(t)
	h := startHive(t, "--tls-cert-file", f.certFile, "--tls-key-file", f.keyFile)
	addr := strings.TrimPrefix(h.httpBase, "https://")
	const attempts = 2000
	start := time.Now()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < attempts; i += 8 {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					continue
				}
				// A record that is no handshake; then wait for the hive
				// to give up on it (its alert and close).
				_, _ = c.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x01, 0xff, 0, 0, 0, 0, 0, 0})
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.Copy(io.Discard, c)
				_ = c.Close()
			}
		})
	}
	wg.Wait()
	var counted float64
	bustest.WaitFor(t, 20*time.Second, func() error {
		code, body, err := httpsGet(t, f, h.httpBase+"/metrics")
		counted, _ = metricValue(body, "hive_http_server_errors_total")
		if counted < attempts {
			return fmt.Errorf("%v server errors counted (%d %.200s %v)", counted, code, body, err)
		}
		return nil
	})
	elapsed := time.Since(start)
	logged, plain := 0, 0
	h.mu.Lock()
	for _, r := range h.logs {
		m, _ := r["msg"].(string)
		if !strings.Contains(m, "TLS handshake error") {
			continue
		}
		logged++
		if r["level"] == nil {
			plain++
		}
	}
	h.mu.Unlock()
	t.Logf("%d failed handshakes in %v: %v counted, %d logged", attempts, elapsed.Round(time.Millisecond), counted, logged)
	if plain > 0 {
		t.Errorf("%d handshake lines were not the hive's JSON", plain)
	}
	if bound := 20 + int(5*elapsed.Seconds()) + 5; logged > bound {
		t.Errorf("%d handshake lines logged in %v; the rate allows %d", logged, elapsed, bound)
	}
}

// httpsGet is a GET through the fixture's CA.
func httpsGet(t *testing.T, f *tlsFixture, url string) (int, string, error) {
	t.Helper()
	return call(f.client(t, "", nil, ""), "GET", url, nil, "")
}

// countSockets is how many sockets a process has open.
func countSockets(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// Low: the readiness probes kept an idle socket per worker, outside the
// file-descriptor budget (1,500 workers with ports: +1,500 fds, and under
// ulimit -n 2048 /health stopped answering). The idle sockets are now
// bounded (collector.ProbeSockets, which the budget keeps free): 300
// ready workers leave the hive's descriptors within that of the count
// before they were probed.
func TestProbesHoldFewSockets(t *testing.T) {
	const n = 300
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	name := fmt.Sprintf("llm-worker-probe%d", os.Getpid())
	h := startHive(t, "--worker-match", "^"+name, "--telemetry-interval", "250ms")
	before := countSockets(t, h.cmd.Process.Pid)
	for i, p := range ports {
		cmd := &exec.Cmd{Path: "/bin/sh", Args: []string{fmt.Sprintf("%s-%d", name, i), "-c", "sleep 600; exit 0", "sh", "--port", strconv.Itoa(p)}}
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	}
	bustest.WaitFor(t, 60*time.Second, func() error {
		r := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
		defer r.cancel()
		if ready := strings.Count(r.next(t, 10*time.Second).Data, `"state":"ready"`); ready < n {
			return fmt.Errorf("%d of %d workers ready", ready, n)
		}
		return nil
	})
	// The test's own stream was just closed: the hive may take a moment
	// to let its socket go, so the bound is polled for.
	var after int
	deadline := time.Now().Add(5 * time.Second)
	for after = countSockets(t, h.cmd.Process.Pid); after-before > collector.ProbeSockets && time.Now().Before(deadline); after = countSockets(t, h.cmd.Process.Pid) {
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("hive sockets: %d before the workers, %d with %d ready ones", before, after, n)
	if after-before > collector.ProbeSockets {
		t.Errorf("%d ready workers took the hive from %d to %d sockets (bound: +%d)", n, before, after, collector.ProbeSockets)
	}
}

// hiveCPU is the hive's CPU time so far, in seconds.
func hiveCPU(t *testing.T, h *hiveProc) float64 {
	t.Helper()
	return proctest.CPU(t, h.cmd.Process.Pid)
}

// Low: a 200 KB client-certificate chain cost 24 ms of CPU per handshake
// (control 0.9 ms): crypto/tls parses every certificate before any check.
// The handshake is now cut past 32 KiB, before the parse: a hundred such
// handshakes cost the hive about what a hundred ordinary ones do, and an
// ordinary client certificate still works.
func TestAttackHugeClientChainIsCut(t *testing.T) {
	f := newTLSFixture(t)
	h := startHiveEnv(t, []string{"HIVE_API_TOKEN=" + e2eToken, "HIVE_TLS_CLIENT_AUTH=request"},
		"--tls-cert-file", f.certFile, "--tls-key-file", f.keyFile, "--tls-client-ca-file", f.caFile)
	huge := f.queenCert
	huge.Certificate = append([][]byte{}, f.queenCert.Certificate...)
	for len(huge.Certificate) < 400 { // ~200 KB: the CA's certificate over and over
		huge.Certificate = append(huge.Certificate, f.ca.Cert.Raw)
	}
	handshakes := func(cert tls.Certificate) float64 {
		addr := strings.TrimPrefix(h.httpBase, "https://")
		pool := x509.NewCertPool()
		pool.AddCert(f.ca.Cert)
		before := hiveCPU(t, h)
		for range 100 {
			// Sent whatever the server asks for, as an attacker's client does.
			c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool,
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }})
			if err == nil {
				_, _ = io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, _ = c.Read(make([]byte, 512))
				_ = c.Close()
			}
		}
		return hiveCPU(t, h) - before
	}
	control := handshakes(f.queenCert)
	cut := handshakes(huge)
	_, body, err := call(f.client(t, "", nil, ""), "GET", h.httpBase+"/metrics", map[string]string{"Authorization": "Bearer " + e2eToken}, "")
	n, _ := metricValue(body, "hive_tls_handshakes_cut_total")
	t.Logf("hive CPU for 100 handshakes: %.2f s with a 1-certificate chain, %.2f s with a %d-certificate one (%v cut)", control, cut, len(huge.Certificate), n)
	if n < 100 || err != nil {
		t.Errorf("%v handshakes counted as cut (%v)", n, err)
	}
	if cut > 3*control+0.1 {
		t.Errorf("100 handshakes with a huge chain cost the hive %.2f s of CPU, ordinary ones %.2f s", cut, control)
	}
	ct := map[string]string{"Content-Type": "application/json"}
	if code, b, err := call(f.client(t, "", &f.queenCert, ""), "POST", h.httpBase+"/v1/jobs", ct, `{"operation":"model_list","hive_id":"h"}`); err != nil || code != 200 {
		t.Errorf("an ordinary client certificate after the attack: %d %s %v", code, b, err)
	}
}

// dirBytes is the size of the regular files in dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

// Low: a worker writing 100 MB/s put 1.9 GB in the log dir between the
// 10 s size checks. Its output now goes through the hive's log writer,
// which rotates as it writes: with --max-log-bytes 1 MiB a worker that
// writes as fast as it can never has more than 2 MiB of log, and its log
// keeps growing (nothing is blocked).
func TestAttackLogFloodIsBoundAsItIsWritten(t *testing.T) {
	dir, logs := t.TempDir(), t.TempDir()
	script := "#!/bin/sh\n" + workerBin + " --cpu 0 --mem-mib 1 \"$@\" &\nwhile :; do head -c 1048576 /dev/zero | tr '\\000' x; done\n"
	if err := os.WriteFile(dir+"/llm-worker-rbee-cpu", []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h := startHiveEnv(t, []string{"HIVE_MAX_LOG_BYTES=1048576"}, "--worker-dir", dir, "--model-dir", t.TempDir(), "--worker-log-dir", logs, "--stop-workers-on-exit")
	lines := jobStream(t, h.httpBase, postJob(t, h.httpBase, `{"operation":"worker_spawn","hive_id":"h","model":"m","worker":"cpu","device":0}`))
	killSpawnedAtEnd(t, lines)
	if lastLine(lines) != "[DONE]" {
		t.Fatalf("spawn: %s", strings.Join(lines, "\n"))
	}
	var peak int64
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		peak = max(peak, dirBytes(t, logs))
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("3 s of a worker writing as fast as it can: the log dir at most %d KiB", peak>>10)
	if peak > 2<<20+64<<10 {
		t.Errorf("the log dir reached %d bytes with --max-log-bytes 1 MiB", peak)
	}
	if m, _ := filepath.Glob(filepath.Join(logs, "worker-*.log.1")); len(m) != 1 {
		t.Errorf("rotated logs after 3 s of flood: %v", m)
	}
}

// killSpawnedAtEnd kills the process group of the worker a spawn job's
// narration names when t ends: the harness kills the hive with SIGKILL,
// which stops none of its workers.
func killSpawnedAtEnd(t *testing.T, lines []string) {
	t.Helper()
	if m := spawnedRe.FindStringSubmatch(strings.Join(lines, "\n")); m != nil {
		pid, _ := strconv.Atoi(m[1])
		t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	}
}

// Low: a failed state write was only a WARN, and the spawned worker then
// went unreported after a restart (and past --max-workers). Now the spawn
// is stopped and refused with the reason, the failure is counted, and
// temporary files a crash left in the state dir are removed at start.
func TestSpawnRefusedWhenStateCannotBeWritten(t *testing.T) {
	state := t.TempDir()
	// workers.json a directory that is not empty: every rename onto it fails.
	if err := os.MkdirAll(state+"/workers.json/x", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state+"/.workers-123.json", []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHive(t, "--state-dir", state, "--worker-dir", binDir, "--model-dir", t.TempDir(), "--worker-log-dir", t.TempDir())
	if _, err := os.Stat(state + "/.workers-123.json"); !os.IsNotExist(err) {
		t.Errorf("a leftover temporary state file is still there: %v", err)
	}
	lines := jobStream(t, h.httpBase, postJob(t, h.httpBase, `{"operation":"worker_spawn","hive_id":"h","model":"m","worker":"cpu","device":0}`))
	killSpawnedAtEnd(t, lines)
	all := strings.Join(lines, "\n")
	if !strings.Contains(all, "the worker state file could not record it") || lastLine(lines) == "[DONE]" {
		t.Fatalf("spawn with an unwritable state:\n%s", all)
	}
	m := regexp.MustCompile(`\(PID (\d+)\) stopped`).FindStringSubmatch(all)
	if m == nil {
		t.Fatalf("no stopped worker named:\n%s", all)
	}
	pid, _ := strconv.Atoi(m[1])
	if st := procState(pid); st != "" && st != "Z" {
		t.Errorf("the refused worker %d still runs (state %s)", pid, st)
	}
	_, body, _ := httpGet(t, h.httpBase+"/metrics")
	if v, _ := metricValue(body, "hive_worker_state_write_errors_total"); v < 1 {
		t.Errorf("state write errors counted: %v", v)
	}
}

// servedSerial is the serial of the certificate a new connection gets.
func servedSerial(t *testing.T, f *tlsFixture, base string) string {
	t.Helper()
	resp, err := f.client(t, "", nil, "").Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0].SerialNumber.String()
}

// Low and cosmetic: a rotated TLS key with mode 0644 was taken (the start
// refuses it), and TLS 1.2's AES-CBC with SHA-1 suites were accepted.
// Now the rotation keeps the old pair and says why until the key is 0600;
// a client that offers only CBC-SHA1 is refused.
func TestTLSRotationRefusesAnOpenKeyAndCBC(t *testing.T) {
	f := newTLSFixture(t)
	h := startHive(t, "--tls-cert-file", f.certFile, "--tls-key-file", f.keyFile)
	first := servedSerial(t, f, h.httpBase)
	next := f.ca.Issue(t, tlstest.Opts{Names: []string{"localhost", "127.0.0.1"}})
	next.Files(t, f.dir, "hive")
	if err := os.Chmod(f.keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, f, h.httpBase); got != first {
		t.Errorf("a key of mode 0644 was taken at rotation: serial %s, was %s", got, first)
	}
	bustest.WaitFor(t, 5*time.Second, func() error {
		if !strings.Contains(h.logText(), "group and others must have no access") {
			return fmt.Errorf("the refused rotation is not logged")
		}
		return nil
	})
	if err := os.Chmod(f.keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, f, h.httpBase); got != next.Serial.String() {
		t.Errorf("after chmod 600 the new pair is not served: serial %s, want %s", got, next.Serial)
	}

	pool := x509.NewCertPool()
	pool.AddCert(f.ca.Cert)
	addr := strings.TrimPrefix(h.httpBase, "https://")
	cbc := &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}}
	if c, err := tls.Dial("tcp", addr, cbc); err == nil {
		c.Close()
		t.Error("a TLS 1.2 client offering only AES-CBC with SHA-1 was accepted")
	}
	gcm := &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12}
	c, err := tls.Dial("tcp", addr, gcm)
	if err != nil {
		t.Fatalf("an ordinary TLS 1.2 client: %v", err)
	}
	c.Close()
}
