package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestBurstThenRateWithSuppressedCount(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewJSONHandler(&buf, nil)), 3, 2)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for range 10 {
		l.Log(slog.LevelWarn, "handshake error")
	}
	if got := strings.Count(buf.String(), "\n"); got != 3 {
		t.Fatalf("%d lines in a burst of 3", got)
	}
	now = now.Add(time.Second) // two tokens back
	l.Log(slog.LevelWarn, "handshake error")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 || !strings.Contains(lines[3], `"suppressed_before":7`) {
		t.Fatalf("the line after the drops: %v", lines)
	}
	if l.Lines() != 11 || l.Dropped() != 7 {
		t.Fatalf("lines %d dropped %d, want 11 and 7", l.Lines(), l.Dropped())
	}
	w := l.Writer(slog.LevelWarn)
	if n, err := w.Write([]byte("http: TLS handshake error\n")); n != 26 || err != nil {
		t.Fatalf("Write: %d %v", n, err)
	}
	if !strings.Contains(buf.String(), `"msg":"http: TLS handshake error"`) {
		t.Fatalf("the writer's line: %s", buf.String())
	}
}
