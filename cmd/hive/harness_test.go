package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/freeport"
)

// Binaries built once for the package: the hive itself and the demo worker
// under a name the default --worker-match catches, in a directory of this
// run's own (ownWorkers).
var (
	hiveBin   string
	workerBin string
	binDir    string
	// nvmlHiveBin is the hive built with cgo, which loads NVML, and
	// fakeNVML the fake libnvidia-ml.so.1 (internal/nvml/fake); both ""
	// where no C compiler is at hand.
	nvmlHiveBin string
	fakeNVML    string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hive-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	hiveBin = filepath.Join(dir, "hive")
	workerBin = filepath.Join(dir, "llm-worker-rbee-cpu")
	for out, pkg := range map[string]string{hiveBin: ".", workerBin: "../demo-worker"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
	}
	buildNVML(dir)
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// ownWorkers is the harness's --worker-match: a command line that starts
// with a program of binDir, which only this test binary's workers run.
func ownWorkers() string {
	return "cmdline:^" + regexp.QuoteMeta(binDir+"/")
}

// namesWorkerMatch reports whether a hive's arguments or environment, or
// the config file its arguments name, set the worker pattern.
func namesWorkerMatch(args, env []string) bool {
	if slices.Contains(args, "--worker-match") ||
		slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "HIVE_WORKER_MATCH=") }) {
		return true
	}
	if i := slices.Index(args, "--config"); i >= 0 && i+1 < len(args) {
		b, err := os.ReadFile(args[i+1])
		return err != nil || strings.Contains(string(b), "match:")
	}
	return false
}

// hiveProc is a running hive binary with its JSON log parsed.
type hiveProc struct {
	cmd      *exec.Cmd
	httpBase string
	natsURL  string
	exited   chan struct{}
	exitErr  error

	mu   sync.Mutex
	logs []map[string]any
}

// startHive runs the hive binary with args (plus test defaults that args
// may override) and waits until it listens.
func startHive(t *testing.T, args ...string) *hiveProc {
	t.Helper()
	return startHiveEnv(t, nil, args...)
}

// buildNVML builds the cgo hive and the fake NVML library into dir, if a
// C compiler is at hand; the NVML tests skip without them.
func buildNVML(dir string) {
	if _, err := exec.LookPath("cc"); err != nil {
		fmt.Fprintln(os.Stderr, "no C compiler: the NVML tests will be skipped")
		return
	}
	bin, lib := filepath.Join(dir, "hive-nvml"), filepath.Join(dir, "fake-nvml", "libnvidia-ml.so.1")
	_ = os.MkdirAll(filepath.Dir(lib), 0o755)
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=1", "CGO_CFLAGS=-O2 -g -Wno-deprecated-declarations")
	cc := exec.Command("cc", "-shared", "-fPIC", "-O2", "-o", lib, "../../internal/nvml/fake/fake_nvml.c", "-lpthread")
	for _, cmd := range []*exec.Cmd{build, cc} {
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "%v: %v\n%s", cmd.Args, err, b)
			return
		}
	}
	nvmlHiveBin, fakeNVML = bin, lib
}

// startHiveEnv is startHive with extra environment variables.
func startHiveEnv(t *testing.T, env []string, args ...string) *hiveProc {
	t.Helper()
	return startHiveBin(t, hiveBin, env, args...)
}

// startHiveBin is startHiveEnv with another build of the hive.
func startHiveBin(t *testing.T, bin string, env []string, args ...string) *hiveProc {
	t.Helper()
	// Each start has its own worker state (tests share --worker-dir, under
	// which the state file lives by default); a test that restarts a hive
	// on the same state passes --state-dir itself.
	base := []string{"--port", "0", "--nats-listen", "127.0.0.1:0", "--queen-url", "", "--log-format", "json",
		"--hive-id", fmt.Sprintf("e2e-%d-%s", os.Getpid(), t.Name()), "--cgroup-root", "", "--state-dir", t.TempDir()}
	// Each test hive matches only the workers this test binary started
	// (from binDir, a directory of its own), so a suite run beside
	// another one, or beside real workers, counts only its own; a test
	// that names its own pattern (flag, variable or file) keeps it.
	if !namesWorkerMatch(args, env) {
		base = append(base, "--worker-match", ownWorkers())
	}
	readyPath := filepath.Join(t.TempDir(), "ready.json")
	cmd := exec.Command(bin, append(base, args...)...)
	cmd.Env = append(append(os.Environ(), "HIVE_READY_FILE="+readyPath), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &hiveProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) != nil {
				rec = map[string]any{"msg": sc.Text()}
			}
			h.mu.Lock()
			h.logs = append(h.logs, rec)
			h.mu.Unlock()
		}
		h.exitErr = cmd.Wait()
		close(h.exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-h.exited
		if t.Failed() {
			t.Logf("hive log:\n%s", h.logText())
		}
	})
	// The hive started on port 0 says where it listens in its ready file,
	// once every module serves.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if b, err := os.ReadFile(readyPath); err == nil {
			var rf struct{ HTTP, NATS string }
			if err := json.Unmarshal(b, &rf); err != nil {
				t.Fatalf("ready file %s: %v", b, err)
			}
			h.httpBase, h.natsURL = rf.HTTP, rf.NATS
			return h
		}
		select {
		case <-h.exited:
			t.Fatalf("hive exited early: %v\n%s", h.exitErr, h.logText())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("hive not serving after 10s\n%s", h.logText())
		}
	}
}

func (h *hiveProc) logText() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, r := range h.logs {
		j, _ := json.Marshal(r)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// hasLog reports whether a log record has msg (and every given attr).
func (h *hiveProc) hasLog(msg string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.logs {
		if r["msg"] == msg {
			return true
		}
	}
	return false
}

// countLogs counts log records whose msg contains s.
func (h *hiveProc) countLogs(s string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.logs {
		if m, _ := r["msg"].(string); strings.Contains(m, s) {
			n++
		}
	}
	return n
}

// signal sends sig and waits for the exit, returning how long it took.
func (h *hiveProc) stop(t *testing.T, sig syscall.Signal) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	_ = h.cmd.Process.Signal(sig)
	select {
	case <-h.exited:
		return time.Since(start), h.exitErr
	case <-time.After(10 * time.Second):
		t.Fatal("hive did not exit within 10s")
	}
	return 0, nil
}

// startWorker runs the demo worker and kills and reaps it when t ends.
func startWorker(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	return startProc(t, workerBin, args...)
}

// startWorkerReady is startWorker that waits for the demo worker's ready
// line: its memory is then resident, whatever the machine's load.
func startWorkerReady(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(workerBin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if !ok && strings.Contains(sc.Text(), " ready: ") {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("demo worker exited before it was ready")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("demo worker not ready in 60 s")
	}
	return cmd
}

// startProc runs a program and kills and reaps it when t ends.
func startProc(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd
}

// sseEvent is one parsed SSE frame.
type sseEvent struct {
	ID, Event, Data string
	Comments        []string
	At              time.Time
}

// sseReader reads an SSE stream frame by frame.
type sseReader struct {
	resp   *http.Response
	cancel context.CancelFunc
	frames chan sseEvent
}

func openSSE(t *testing.T, url string) *sseReader {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	return openSSEReq(t, req)
}

// openSSEReq opens a stream with req (its headers: Last-Event-ID, a token).
func openSSEReq(t *testing.T, req *http.Request) *sseReader {
	t.Helper()
	url := req.URL.String()
	ctx, cancel := context.WithCancel(req.Context())
	req = req.WithContext(ctx)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	r := &sseReader{resp: resp, cancel: cancel, frames: make(chan sseEvent, 256)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(r.frames)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Data != "" || len(ev.Comments) > 0 {
					ev.At = time.Now()
					r.frames <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, ":"):
				ev.Comments = append(ev.Comments, strings.TrimSpace(line[1:]))
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.Event = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.Data += line[6:]
			}
		}
	}()
	t.Cleanup(func() { cancel(); _ = resp.Body.Close(); <-done })
	return r
}

// next returns the next data event, or fails after timeout.
func (r *sseReader) next(t *testing.T, timeout time.Duration) sseEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-r.frames:
			if !ok {
				t.Fatal("SSE stream ended")
			}
			if ev.Data != "" {
				return ev
			}
		case <-deadline:
			t.Fatalf("no SSE event within %v", timeout)
		}
	}
}

// ends reports whether the stream ends within timeout (the frames
// already sent are read past).
func (r *sseReader) ends(t *testing.T, timeout time.Duration) bool {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-r.frames:
			if !ok {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// decodeStrict decodes a telemetry event and fails on any unknown field.
func decodeStrict(t *testing.T, data string) wire.TelemetryEvent {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(data)))
	dec.DisallowUnknownFields()
	var ev wire.TelemetryEvent
	if err := dec.Decode(&ev); err != nil {
		t.Fatalf("telemetry %s: %v", data, err)
	}
	return ev
}

func httpGet(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	p, err := freeport.Ports(1)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(p[0])
}
