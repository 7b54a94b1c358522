package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive/bus/bustest"
)

// The README's quick start works as written: each command of its "in
// another terminal" block runs against a hive started as `make run` starts
// it (standalone), with the test's port for 7835. A command that stops
// working, or a new one the test does not know, fails here.
func TestReadmeQuickStart(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "## Quick start")
	if !ok {
		t.Fatal("README has no Quick start")
	}
	blocks := strings.Split(rest, "```sh\n")
	if len(blocks) < 3 {
		t.Fatal("the quick start lacks its second command block")
	}
	cmds := strings.Split(strings.SplitN(blocks[2], "```", 2)[0], "\n")
	home := t.TempDir() // the worker directory is under ~, as make run has it
	h := startHiveEnv(t, []string{"HOME=" + home}, "--queen-url", "")
	base := h.httpBase
	for _, line := range cmds {
		cmd, _, _ := strings.Cut(line, "#")
		cmd = strings.TrimSpace(cmd)
		if cmd == "" {
			continue
		}
		f := strings.Fields(strings.ReplaceAll(strings.ReplaceAll(cmd, "http://localhost:7835", base), "localhost:7835", base))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var c *exec.Cmd
		want := ""
		switch {
		case f[0] == "xdg-open": // a desktop's browser: the page it would open answers
			f = []string{"curl", "-sf", f[1]}
			want = "<html"
		case f[0] == "curl" && strings.Contains(cmd, "-N"):
			f = append([]string{"curl", "--max-time", "3"}, f[1:]...) // a stream: its first event
			want = "data: {"
		case f[0] == "curl" && strings.HasSuffix(cmd, "/metrics"):
			want = "hive_build_info"
		case f[0] == "curl" && strings.HasSuffix(cmd, "/health"):
			want = "ok"
		case cmd == "bin/hive watch":
			f = []string{hiveBin, "watch", "--once", "--url", base}
			want = "HIVE"
		case cmd == "bin/hive --version":
			f, want = []string{hiveBin, "--version"}, "hive "
		case cmd == "bin/hive --help":
			f, want = []string{hiveBin, "--help"}, "hive config"
		case cmd == "bin/nats sub hive.telemetry":
			nats, err := exec.LookPath("nats")
			if err != nil {
				t.Log("no nats CLI on PATH (make tools): its line is skipped")
				cancel()
				continue
			}
			f, want = []string{nats, "--server", h.natsURL, "sub", "hive.telemetry", "--count", "1", "--raw"}, `"type":"telemetry"`
		default:
			cancel()
			t.Fatalf("the quick start has a command this test does not know: %q", cmd)
		}
		if f[0] == "curl" {
			if _, err := exec.LookPath("curl"); err != nil {
				t.Logf("no curl: %q skipped", cmd)
				cancel()
				continue
			}
		}
		c = exec.CommandContext(ctx, f[0], f[1:]...)
		out, err := c.CombinedOutput()
		cancel()
		// curl --max-time ends a stream with exit 28 after the first event.
		if (err != nil && !strings.Contains(cmd, "-N")) || !strings.Contains(string(out), want) {
			t.Errorf("%q: %v\n%.500s", cmd, err, out)
		}
	}
	firstThingsToTry(t, string(b), home, base)
}

var watchRowRe = regexp.MustCompile(`(?m)\s\d+\s+tinyllama\s+\d+\s`)

// firstThingsToTry runs the README's "First things to try" block as a
// shell would, one script, with the test's binaries for bin/ and its port
// for 7835: the worker it spawns must come up and be listed.
func firstThingsToTry(t *testing.T, readme, home, base string) {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "## First things to try")
	if !ok {
		t.Fatal("README has no First things to try")
	}
	_, block, ok := strings.Cut(rest, "```sh\n")
	if !ok {
		t.Fatal("First things to try has no commands")
	}
	script := strings.SplitN(block, "```", 2)[0]
	script = strings.NewReplacer("bin/demo-worker", workerBin, "bin/hive watch", hiveBin+" watch --url "+base, "bin/hive", hiveBin,
		"localhost:7835", strings.TrimPrefix(base, "http://")).Replace(script)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl: the First things to try block is skipped")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-c", script)
	cmd.Env = append(os.Environ(), "HOME="+home)
	cmd.WaitDelay = 5 * time.Second // a command left running holds the output pipe
	out, err := cmd.CombinedOutput()
	if m := spawnedRe.FindStringSubmatch(string(out)); m != nil {
		pid, _ := strconv.Atoi(m[1])
		t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	}
	// The job's narration ends, and hive watch's table has the worker's
	// row: its pid, model and port. The README waits a second for the
	// next tick; a starved machine may tick later, so the watch is asked
	// again until the row is there.
	if err != nil || !strings.Contains(string(out), "[DONE]") {
		t.Fatalf("First things to try: %v; want the spawn's [DONE]:\n%.3000s", err, out)
	}
	bustest.WaitFor(t, 20*time.Second, func() error {
		if watchRowRe.Match(out) {
			return nil
		}
		out, _ = exec.Command(hiveBin, "watch", "--once", "--url", base).CombinedOutput()
		return fmt.Errorf("no row of the spawned worker in hive watch:\n%.2000s", out)
	})
}
