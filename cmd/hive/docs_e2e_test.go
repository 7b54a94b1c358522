package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runnableMark precedes a shell block of docs/*.md that TestDocsRunnableBlocks
// runs: a command in the docs that breaks fails CI.
const runnableMark = "<!-- runnable"

// docRewrites turn a block written for a real machine into one for this
// test: /etc/rbee a temporary directory, the hive's address and names
// this machine's loopback, the daemon started in the background on a
// port the kernel picks (read from its ready file), a stream read for
// 3 s, a live hive watch a --once one.
var (
	daemonLine = regexp.MustCompile(`^hive (.*--listen \S+.*)$`)
	listenArg  = regexp.MustCompile(`--listen \S+`)
)

func rewriteDocBlock(block, dir string) string {
	// /etc/rbee stands for a directory that does not exist yet, as on a
	// fresh machine: a block must make it.
	r := strings.NewReplacer("/etc/rbee", filepath.Join(dir, "etc-rbee"), "10.0.0.12", "127.0.0.1", "gpu-01", "localhost")
	var out []string
	lines := strings.Split(r.Replace(block), "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) { // a continued command is one line here
			i++
			l = strings.TrimSuffix(l, `\`) + " " + strings.TrimSpace(lines[i])
		}
		switch {
		case daemonLine.MatchString(l):
			args := listenArg.ReplaceAllString(daemonLine.FindStringSubmatch(l)[1], "--listen 127.0.0.1:0")
			out = append(out, `rm -f "$READY"; HIVE_READY_FILE="$READY" "$HIVE" `+args+` --nats-listen "" --state-dir "$(mktemp -d)" --hive-id docs &`,
				`for i in $(seq 200); do [ -s "$READY" ] && break; sleep 0.05; done`,
				`PORT=$(grep -o '"http":"[^"]*' "$READY" | grep -o '[0-9]*$')`)
		case strings.HasPrefix(l, "curl -N "):
			out = append(out, "curl -sS --max-time 3 "+strings.ReplaceAll(strings.TrimPrefix(l, "curl -N "), ":7835", ":$PORT")+" || [ $? -eq 28 ]")
		case strings.HasPrefix(l, "hive watch "):
			out = append(out, `"$HIVE" watch --once `+strings.ReplaceAll(strings.TrimPrefix(l, "hive watch "), ":7835", ":$PORT"))
		default:
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDocsRunnableBlocks runs, in order and in one shell per file, every
// block of docs/*.md marked runnable, as rewritten above, and checks that
// each stream it reads gave an event and each hive watch a table.
func TestDocsRunnableBlocks(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: the runnable doc blocks are skipped", tool)
		}
	}
	files, _ := filepath.Glob("../../docs/*.md")
	ran := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var script []string
		for _, part := range strings.Split(string(b), runnableMark)[1:] {
			_, block, ok := strings.Cut(part, "```sh\n")
			if !ok {
				t.Fatalf("%s: a runnable mark without a shell block after it", f)
			}
			script = append(script, strings.SplitN(block, "```", 2)[0])
		}
		if len(script) == 0 {
			continue
		}
		dir := t.TempDir()
		body := "set -e\ncd " + dir + "\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + rewriteDocBlock(strings.Join(script, "\n"), dir)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, "bash", "-c", body)
		cmd.Env = append(os.Environ(), "HIVE="+hiveBin, "READY="+filepath.Join(dir, "ready.json"))
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("%s: its runnable blocks failed: %v\n%s\n--- as run:\n%s", f, err, out, body)
			continue
		}
		for _, want := range []string{"data: {", "HIVE"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s: no %q in what its blocks printed:\n%s", f, want, out)
			}
		}
		ran++
		t.Logf("%s: %d runnable block(s) ran", filepath.Base(f), len(script))
	}
	if ran == 0 {
		t.Fatal("no runnable block in docs/*.md")
	}
}
