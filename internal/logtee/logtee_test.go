package logtee

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCopyRotatesWithinTwiceMax(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "w.log")
	if err := os.WriteFile(log, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := strings.Repeat("0123456789", 10_000) // 100 KB through a 16 KB bound
	if err := Copy(strings.NewReader(in), log, 16<<10); err != nil {
		t.Fatal(err)
	}
	cur, _ := os.ReadFile(log)
	old, _ := os.ReadFile(log + ".1")
	if len(cur) > 16<<10 || len(old) != 16<<10 {
		t.Fatalf("log %d bytes, .1 %d bytes; want each at most 16 KiB", len(cur), len(old))
	}
	// What is kept is the end of the stream, in order.
	if got := string(old) + string(cur); !strings.HasSuffix(in, got) {
		t.Fatal("the kept bytes are not the stream's end")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("%d files in the log dir, want 2", len(ents))
	}
}

func TestCopyFollowsNoLink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "w.log")); err != nil {
		t.Fatal(err)
	}
	if err := Copy(bytes.NewReader([]byte("x")), filepath.Join(dir, "w.log"), 10); err == nil {
		t.Fatal("wrote through a link")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Fatalf("target now %q", b)
	}
}
