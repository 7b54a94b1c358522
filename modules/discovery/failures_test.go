package discovery

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
)

type recordHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.msgs = append(h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// Consecutive push failures are logged at the 1st, the 10th and every 60th,
// and the recovery once.
func TestFailureLogThrottle(t *testing.T) {
	h := &recordHandler{}
	f := failureLog{log: slog.New(h)}
	var at []int
	for i := 1; i <= 130; i++ {
		before := len(h.msgs)
		f.failed(errors.New("boom"))
		if len(h.msgs) > before {
			at = append(at, i)
		}
	}
	if got := at; len(got) != 4 || got[0] != 1 || got[1] != 10 || got[2] != 60 || got[3] != 120 {
		t.Fatalf("logged at failures %v, want [1 10 60 120]", got)
	}
	f.ok()
	f.ok()
	if last := h.msgs[len(h.msgs)-1]; last != "push to Queen recovered" || len(h.msgs) != 5 {
		t.Fatalf("recovery logs %v", h.msgs)
	}
}
