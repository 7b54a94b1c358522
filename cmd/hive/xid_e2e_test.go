package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive/bus/wire"
)

// kmsgLog is a kernel log fixture the hive follows (workers.kmsg-path).
type kmsgLog string

func (k kmsgLog) write(t *testing.T, lines ...string) time.Time {
	t.Helper()
	f, err := os.OpenFile(string(k), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	at := time.Now()
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
	return at
}

// kmsgCard is a fake card with n workers, a kernel log fixture and a boot
// id file, over the given state dir.
func kmsgCard(t *testing.T, n int, state, boot string) (*fakeCard, kmsgLog) {
	t.Helper()
	log := kmsgLog(filepath.Join(t.TempDir(), "kmsg"))
	if err := os.WriteFile(string(log), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := startFakeCardEnv(t, n, map[string]string{}, []string{"HIVE_KMSG_PATH=" + string(log), "HIVE_BOOT_ID_FILE=" + boot},
		"--state-dir", state, "--telemetry-interval", "1s")
	return c, log
}

func gpuHealth(ev wire.TelemetryEvent) wire.HealthStatus {
	if len(ev.Node.GPUs) == 0 {
		return wire.HealthStatus{}
	}
	return ev.Node.GPUs[0].Health
}

// An application Xid the kernel blames on a worker's process marks that
// worker failed (exit.xid) at once, not a tick later, and leaves the GPU
// healthy. The bound is relative to the same hive's tick-to-event time,
// which a busy machine stretches alike.
func TestKmsgApplicationXidFailsTheWorker(t *testing.T) {
	c, log := kmsgCard(t, 6, t.TempDir(), writeFile(t, "boot-a"))
	var control []time.Duration
	for len(control) < 5 {
		ev := c.next(t)
		if at, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err == nil {
			control = append(control, time.Since(at))
		}
	}
	var took []time.Duration
	for i, pid := range c.workers[1:] {
		written := log.write(t, fmt.Sprintf("4,%d,%d,-;NVRM: Xid (PCI:0000:05:00): 31, pid=%d, name=python3, Ch 00000010, MMU Fault", 100+i, 1000+i, pid))
		for {
			ev := c.next(t)
			w, ok := workerOf(ev, pid)
			if !ok || w.State != wire.WorkerFailed {
				continue
			}
			took = append(took, time.Since(written))
			if w.Exit == nil || w.Exit.XID != 31 {
				t.Errorf("worker %d failed without its xid: %+v", pid, w.Exit)
			}
			if h := gpuHealth(ev); h.Status != wire.HealthHealthy {
				t.Errorf("an application Xid made the GPU %+v", h)
			}
			break
		}
	}
	slices.Sort(control)
	slices.Sort(took)
	bound := max(200*time.Millisecond, 2*control[len(control)-1])
	t.Logf("Xid 31 to a failed worker on the stream: %v; tick to event (control): %v", took, control)
	if worst := took[len(took)-1]; worst > bound {
		t.Errorf("a failed worker reached the stream %v after its Xid, want within %v", worst, bound)
	}
	if w, _ := workerOf(c.next(t), c.workers[0]); w.State == wire.WorkerFailed {
		t.Error("a worker the kernel did not name is failed")
	}
}

// Xid 79 makes the GPU unhealthy with action reboot at once; a restart of
// the hive keeps it, a new boot ends it, and the third 79 after two
// reboots asks for a hardware inspection.
func TestKmsgXid79LastsTheBoot(t *testing.T) {
	state, boot := t.TempDir(), writeFile(t, "boot-1")
	awaitGPU := func(c *fakeCard, want, action string) wire.HealthStatus {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if h := gpuHealth(c.next(t)); h.Status == want && h.Action == action {
				return h
			}
		}
		t.Fatalf("GPU never %s with action %q", want, action)
		return wire.HealthStatus{}
	}
	c, log := kmsgCard(t, 1, state, boot)
	awaitGPU(c, wire.HealthHealthy, "")
	control := time.Duration(0)
	for range 3 {
		if at, err := time.Parse(time.RFC3339Nano, c.next(t).Timestamp); err == nil {
			control = max(control, time.Since(at))
		}
	}
	written := log.write(t, "NVRM: Xid (PCI:0000:05:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.")
	h := awaitGPU(c, wire.HealthUnhealthy, wire.ActionReboot)
	if took, bound := time.Since(written), max(200*time.Millisecond, 2*control); took > bound {
		t.Errorf("Xid 79 reached the stream %v after its line, want within %v (tick to event: %v)", took, bound, control)
	}
	if !strings.Contains(h.Reason, "XID 79 (ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS)") {
		t.Errorf("reason %q", h.Reason)
	}
	restart := func(bootID string) *fakeCard {
		t.Helper()
		if _, err := c.stop(t, syscall.SIGTERM); err != nil {
			t.Fatalf("stop: %v", err)
		}
		if err := os.WriteFile(boot, []byte(bootID+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, log = kmsgCard(t, 1, state, boot)
		return c
	}
	c = restart("boot-1")
	awaitGPU(c, wire.HealthUnhealthy, wire.ActionReboot)
	c = restart("boot-2")
	awaitGPU(c, wire.HealthHealthy, "")
	log.write(t, "NVRM: GPU 0000:05:00.0: GPU has fallen off the bus.")
	awaitGPU(c, wire.HealthUnhealthy, wire.ActionReboot)
	c = restart("boot-3")
	awaitGPU(c, wire.HealthHealthy, "")
	log.write(t, "NVRM: Xid (PCI:0000:05:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus.")
	awaitGPU(c, wire.HealthUnhealthy, wire.ActionHardwareInspection)
}

// A storm of kernel log lines (10,000 a second, Xids of no worker, a
// 100 KB line, escape bytes) keeps the tick at its second, the hive's
// memory bounded, and no raw escape byte in the log or /metrics.
func TestKmsgStorm(t *testing.T) {
	c, log := kmsgCard(t, 1, t.TempDir(), writeFile(t, "boot-a"))
	c.next(t)
	rss0 := rssBytes(t, c.cmd.Process.Pid)
	burst := make([]string, 0, 1000)
	for i := range 1000 {
		switch i % 4 {
		case 0:
			burst = append(burst, fmt.Sprintf("NVRM: Xid (PCI:0000:05:00): 13, pid=%d, name=\x1b[31mevil\x07, Graphics SM Warp Exception", 4_000_000+i))
		case 1:
			burst = append(burst, "NVRM: Xid (PCI:0000:aa:00): 43, pid='<unknown>', name=<unknown>, reset channel")
		default:
			burst = append(burst, fmt.Sprintf("usb %d-1: new high-speed USB device number %d", i, i))
		}
	}
	log.write(t, "NVRM: Xid (PCI:0000:05:00): 31, pid=1, name="+strings.Repeat("\x1b[2J", 25_000))
	var stamps []time.Time
	var last wire.TelemetryEvent
	stop := time.Now().Add(5 * time.Second)
	go func() {
		for time.Now().Before(stop) {
			log.write(t, burst...)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	for time.Now().Before(stop.Add(time.Second)) {
		ev := c.next(t)
		last = ev
		if at, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err == nil {
			stamps = append(stamps, at)
		}
	}
	// Application Xids of no worker, and an ignorable one on a bus no GPU
	// sits on, change no health.
	if h := last.HiveInfo.HealthStatus; h.Status != wire.HealthHealthy {
		t.Errorf("the storm made the hive %+v", h)
	}
	// The ticker keeps start + n s: at most a few events besides the ticks.
	if len(stamps) < 4 || len(stamps) > 10 {
		t.Errorf("%d events in about 6 s of storm, want the ticks (6 or so)", len(stamps))
	}
	if grown := rssBytes(t, c.cmd.Process.Pid) - rss0; grown > 30<<20 {
		t.Errorf("RSS grew %d MiB in the storm", grown>>20)
	}
	_, metrics, _ := httpGet(t, c.httpBase+"/metrics")
	t.Logf("%d events; after the storm:\n%s", len(stamps), grepLines(metrics, "hive_kmsg"))
	for what, text := range map[string]string{"log": c.logText(), "/metrics": metrics} {
		if strings.ContainsAny(text, "\x1b\x07") {
			t.Errorf("a raw escape byte in the %s", what)
		}
	}
	if !regexp.MustCompile(`(?m)^hive_kmsg_lines_cut_total\{[^}]*\} 1$`).MatchString(metrics) ||
		!regexp.MustCompile(`(?m)^hive_kmsg_lines_total\{[^}]*\} [1-9]`).MatchString(metrics) {
		t.Errorf("kmsg counters:\n%s", grepLines(metrics, "hive_kmsg"))
	}
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, []byte(text+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
