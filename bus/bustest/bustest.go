// Package bustest starts a real embedded bus for tests, as nats-server's
// own RunServer helper does: in-process only unless asked, quiet unless
// HIVE_TEST_LOG=debug, and closed by t.Cleanup.
package bustest

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rbee/hive/bus"
)

// Start runs a bus without a TCP listener and closes it when t ends.
func Start(t testing.TB) *bus.Bus {
	t.Helper()
	return StartConfig(t, bus.Config{Name: "test"})
}

// StartConfig runs a bus with cfg and closes it when t ends.
func StartConfig(t testing.TB, cfg bus.Config) *bus.Bus {
	t.Helper()
	b, err := bus.Start(cfg, Logger(t))
	if err != nil {
		t.Fatalf("bustest: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// Logger discards logs unless HIVE_TEST_LOG is set (debug, info, ...), in
// which case it logs through t.
func Logger(t testing.TB) *slog.Logger {
	lv := os.Getenv("HIVE_TEST_LOG")
	if lv == "" {
		return slog.New(slog.DiscardHandler)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(lv))
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// WaitFor polls cond every 10 ms until it returns nil or timeout passes,
// then fails with cond's last error.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RunModule runs a module's Run until t ends, then cancels it and fails t
// if Run returned an error. When ready is not nil it waits for it, and
// fails t if Run returns first. The returned stop cancels Run early (ctx
// is a module's only stop signal); it is safe to call more than once.
func RunModule(t testing.TB, name string, run func(context.Context) error, ready <-chan struct{}) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s Run: %v", name, err)
		}
	})
	if ready == nil {
		return cancel
	}
	select {
	case <-ready:
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("%s stopped before it was ready: %v", name, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s not ready after 10 s", name)
	}
	return cancel
}

// TreeBytes is the size of the regular files under dir, at any depth. A
// file removed while it walks (a store dropping a block) counts nothing.
func TreeBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err == nil && fi.Mode().IsRegular():
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
