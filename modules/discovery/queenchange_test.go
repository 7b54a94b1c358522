package discovery

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
)

// A Queen change needs an authorized caller (unless it names the running
// or configured Queen), an allowed host and a free slot of the rate limit.
func TestQueenChangeRefusals(t *testing.T) {
	q := newFakeQueen(t, nil)
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := start(t, Config{QueenURL: q.srv.URL, QueenAllow: "127.0.0.1,queen.example", ChangeBurst: 2, ChangeEvery: 10 * time.Second, Now: clock})
	q.waitN(t, 1)

	// Unauthorized: the running Queen is fine, another is not.
	if got := h.askQueen(t, wire.QueenURL{URL: q.srv.URL}); got != "unchanged" {
		t.Errorf("running Queen, unauthorized: %s", got)
	}
	if got := h.askQueen(t, wire.QueenURL{URL: "http://queen.example:7833"}); got != wire.CodeForbidden {
		t.Errorf("other Queen, unauthorized: %s", got)
	}
	// Authorized but not allowed: never sent to.
	for _, u := range []string{"http://10.0.0.1:7833", "http://evil.example", "http://127.0.0.2:7833", "http://[::1]:7833"} {
		if got := h.queenURL(t, u); got != wire.CodeForbidden {
			t.Errorf("%s not allowed: %s", u, got)
		}
	}
	// Rate: two changes at once, then one per ChangeEvery.
	other := newFakeQueen(t, nil)
	urls := []string{other.srv.URL + "/a", other.srv.URL + "/b", other.srv.URL + "/c"}
	if got := h.queenURL(t, urls[0]); got != "started" {
		t.Fatalf("first change: %s", got)
	}
	if got := h.queenURL(t, urls[1]); got != "started" {
		t.Fatalf("second change: %s", got)
	}
	if got := h.queenURL(t, urls[2]); got != wire.CodeRateLimited {
		t.Fatalf("third change at once: %s", got)
	}
	mu.Lock()
	now = now.Add(10 * time.Second)
	mu.Unlock()
	if got := h.queenURL(t, urls[2]); got != "started" {
		t.Fatalf("change after the interval: %s", got)
	}
	want := `
# HELP hive_discovery_queen_changes_refused_total Queen URLs refused: host not allowed, caller not authorised, or too many changes.
# TYPE hive_discovery_queen_changes_refused_total counter
hive_discovery_queen_changes_refused_total 6
`
	if err := testutil.GatherAndCompare(h.reg, strings.NewReader(want), "hive_discovery_queen_changes_refused_total"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(h.reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// A Queen that answers with a redirect gets nothing more: the hive
// follows no redirect, so the target is never requested.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer target.Close()
	var asked atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.Redirect(w, r, target.URL+"/v1/shutdown?x=1", http.StatusTemporaryRedirect)
	}))
	defer evil.Close()
	h := start(t, Config{QueenURL: evil.URL})
	bustest.WaitFor(t, 10*time.Second, func() error {
		if asked.Load() < 3 {
			return fmt.Errorf("%d attempts", asked.Load())
		}
		return nil
	})
	if n := hits.Load(); n != 0 {
		t.Fatalf("the redirect target was requested %d times", n)
	}
	_ = h
}
