package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
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
	h := startHive(t, "--queen-url", "")
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
}
