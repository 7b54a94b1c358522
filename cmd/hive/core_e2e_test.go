package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/proctest"
)

// The latest event is sent on connect: with an hour between ticks, an
// event that arrives at all was sent at once, whatever the machine's load.
func TestSnapshotOnConnect(t *testing.T) {
	h := startHive(t, "--telemetry-interval", "1h")
	first := openSSE(t, h.httpBase+"/v1/heartbeats/stream").next(t, 10*time.Second)
	checkTelemetryWire(t, first.Data)
	if second := openSSE(t, h.httpBase+"/v1/heartbeats/stream").next(t, 10*time.Second); second.ID != first.ID {
		t.Fatalf("a second client got event %s, the first %s: the snapshot must be the latest event", second.ID, first.ID)
	}
}

// The demo worker burns one core and holds 256 MiB; the hive must report
// it with real numbers on SSE, and the same bytes on NATS.
func TestRealWorkerTelemetry(t *testing.T) {
	h := startHive(t)
	const memMiB = 256
	// Ready: its memory is resident before the samples that check it.
	w := startWorkerReady(t, "--model", "tinyllama", "--port", "9123", "--mem-mib", strconv.Itoa(memMiB), "--cpu", "1", "--http=false")
	pid := w.Process.Pid

	nc, err := nats.Connect(h.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	natsMsgs, err := nc.SubscribeSync(wire.SubjectTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	sse := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
	first := sse.next(t, 5*time.Second)
	checkTelemetryWire(t, first.Data)

	// CPU is checked against a control: whatever share of a core the
	// worker gets on a busy machine, the CPU time the samples add up to is
	// what /proc says it used between the first and the last of them.
	var samples []wire.ProcessStats
	var stamps []time.Time
	var cpuAt []float64
	var sseData []string
	for len(samples) < 5 {
		ev := sse.next(t, 5*time.Second)
		if ev.Event != "heartbeat" || ev.ID == "" {
			t.Fatalf("frame %+v", ev)
		}
		checkTelemetryWire(t, ev.Data)
		sseData = append(sseData, ev.Data)
		te := decodeStrict(t, ev.Data)
		for _, ws := range te.Workers {
			if int(ws.PID) == pid {
				samples = append(samples, ws)
				ts, err := time.Parse(time.RFC3339Nano, te.Timestamp)
				if err != nil {
					t.Fatal(err)
				}
				stamps = append(stamps, ts)
				cpuAt = append(cpuAt, proctest.CPU(t, pid))
			}
		}
	}
	// Sample 0 may be the average since the worker started; the rest are
	// per-tick deltas.
	reported := 0.0
	for i := 1; i < len(samples); i++ {
		reported += float64(samples[i].CPUPct) / 100 * stamps[i].Sub(stamps[i-1]).Seconds()
	}
	control := cpuAt[len(cpuAt)-1] - cpuAt[0]
	t.Logf("worker CPU over %d ticks: telemetry %.3f s, /proc %.3f s", len(samples)-1, reported, control)
	if control < 0.1 {
		t.Fatalf("the busy worker got %.3f s of CPU: no control", control)
	}
	if d := reported - control; d > 0.1+0.15*control || d < -(0.1+0.15*control) {
		t.Errorf("telemetry adds up to %.3f s of CPU, /proc says %.3f s", reported, control)
	}
	for i, s := range samples[1:] {
		if lo, hi := uint64(memMiB*9/10), uint64(memMiB*11/10); s.RSSMB < lo || s.RSSMB > hi {
			t.Errorf("sample %d: rss_mb %d, want %d..%d", i+1, s.RSSMB, lo, hi)
		}
		if s.Model == nil || *s.Model != "tinyllama" || s.Instance != "9123" || s.Group != "llm" {
			t.Errorf("sample %d: identity %+v", i+1, s)
		}
	}
	if samples[len(samples)-1].UptimeS <= samples[0].UptimeS {
		t.Errorf("uptime_s did not increase: %d -> %d", samples[0].UptimeS, samples[len(samples)-1].UptimeS)
	}

	// NATS subscribers get the very bytes SSE sent, with the Hive-Id header.
	want := map[string]bool{}
	for _, d := range sseData {
		want[d] = true
	}
	matched := 0
	deadline := time.Now().Add(5 * time.Second)
	for matched == 0 && time.Now().Before(deadline) {
		m, err := natsMsgs.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("nats: %v", err)
		}
		if m.Header.Get(wire.HeaderHiveID) == "" {
			t.Fatalf("no %s header", wire.HeaderHiveID)
		}
		if want[string(m.Data)] {
			matched++
		}
	}
	if matched == 0 {
		t.Fatal("no NATS message carried the same bytes as an SSE event")
	}

	// Gone within two ticks of its exit.
	_ = syscall.Kill(pid, syscall.SIGKILL)
	_ = w.Wait()
	for tick := 1; ; tick++ {
		te := decodeStrict(t, sse.next(t, 3*time.Second).Data)
		present := false
		for _, ws := range te.Workers {
			present = present || int(ws.PID) == pid
		}
		if !present {
			break
		}
		if tick >= 2 {
			t.Fatalf("worker still reported %d ticks after it exited", tick)
		}
	}
}

// The real NATS CLI subscribes at the hive's TCP listener.
func TestNATSCLISubscribes(t *testing.T) {
	natsCLI, err := exec.LookPath("nats")
	if err != nil {
		t.Skip("nats CLI not on PATH (make tools installs it into bin/)")
	}
	h := startHive(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, natsCLI, "--server", h.natsURL, "sub", wire.SubjectTelemetry, "--count", "2", "--raw").CombinedOutput()
	if err != nil {
		t.Fatalf("nats sub: %v\n%s", err, out)
	}
	lines := 0
	for _, l := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if bytes.HasPrefix(l, []byte("{")) {
			checkTelemetryWire(t, string(l))
			lines++
		}
	}
	if lines != 2 {
		t.Fatalf("want 2 telemetry lines from nats sub, got:\n%s", out)
	}
}

// SIGTERM ends the hive in order within its budget (exit 0: a stage over
// the budget exits 1 with "shutdown timed out"), and the streams see a last
// event marked "stopping".
func TestSignalShutdown(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			h := startHive(t)
			sse := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
			sse.next(t, 5*time.Second)
			took, err := h.stop(t, sig)
			if err != nil {
				t.Fatalf("exit: %v", err)
			}
			t.Logf("%v: stopped after %v", sig, took)
			var last string
			for ev := range sse.frames {
				if ev.Data != "" {
					last = ev.Data
				}
			}
			if !strings.Contains(last, `"operational_status":"stopping"`) {
				t.Errorf("last event before the end: %s", last)
			}
			if !h.hasLog("hive stopped") {
				t.Error("no clean-stop log line")
			}
		})
	}
}

func TestBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"--port", "70000"},
		{"--telemetry-interval", "0s"},
		{"--log-format", "xml"},
		{"--no-such-flag"},
		{"--worker-match", "(["},
	} {
		cmd := exec.Command(hiveBin, append(args, "--port", "0", "--nats-listen", "")...)
		if args[0] == "--port" {
			cmd = exec.Command(hiveBin, args...)
		}
		out, err := cmd.CombinedOutput()
		code := -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != 2 || len(out) == 0 {
			t.Errorf("%v: exit %d, output %q", args, code, out)
		}
	}
}

// A port in use ends the hive with exit 1 and says why; nothing hangs.
func TestPortInUse(t *testing.T) {
	h := startHive(t)
	port := h.httpBase[strings.LastIndex(h.httpBase, ":")+1:]
	cmd := exec.Command(hiveBin, "--port", port, "--nats-listen", "", "--queen-url", "", "--cgroup-root", "")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "the port is in use") || !strings.Contains(string(out), "--port or --listen") || strings.Contains(string(out), "gateway: gateway:") {
		t.Fatalf("second hive on port %s: %v\n%s", port, err, out)
	}
}
