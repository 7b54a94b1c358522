package kmsg

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParse(t *testing.T) {
	for _, c := range []struct {
		line string
		want Event
		ok   bool
	}{
		{"4,1234,5678901,-;NVRM: Xid (PCI:0000:05:00): 31, pid=4242, name=python3, Ch 00000010, intr 10000000. MMU Fault", Event{31, "0000:05:00", 4242, "python3"}, true},
		{"[ 123.4] NVRM: Xid (PCI:0000:CB:00): 13, pid='<unknown>', name=<unknown>, Graphics SM Warp Exception", Event{13, "0000:cb:00", 0, ""}, true},
		{"NVRM: Xid (PCI:0000:05:00): 79, pid=1, name=init, GPU has fallen off the bus.", Event{79, "0000:05:00", 1, "init"}, true},
		{"NVRM: Xid (PCI:0000:05:00.0): 48, DBE (0x1) has been detected", Event{48, "0000:05:00", 0, ""}, true},
		{"NVRM: GPU at PCI:0000:05:00: GPU-aaaa", Event{}, false},
		{"NVRM: GPU 0000:05:00.0: GPU has fallen off the bus.", Event{79, "0000:05:00", 0, ""}, true},
		{"usb 1-1: new high-speed USB device", Event{}, false},
		{"NVRM: Xid (PCI:0000:05:00): 99999999999999999999, x", Event{}, false},
	} {
		got, ok := Parse([]byte(c.line))
		if ok != c.ok || got != c.want {
			t.Errorf("%q: %+v %v, want %+v %v", c.line, got, ok, c.want, c.ok)
		}
	}
	if got := NormalizePCI("00000000:05:00.0"); got != "0000:05:00" {
		t.Errorf("NormalizePCI: %q", got)
	}
}

// Follow reads what is appended after it started, cuts a 100 KB line
// and reads the Xid after it whole.
func TestFollowAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kmsg")
	if err := os.WriteFile(path, []byte("NVRM: Xid (PCI:0000:05:00): 79, before the start\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu  sync.Mutex
		got []Event
		st  Stats
		wg  sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = Follow(ctx, path, 5*time.Millisecond, &st, func(ev Event) { mu.Lock(); got = append(got, ev); mu.Unlock() })
	}()
	defer func() { cancel(); wg.Wait() }()
	for st.Lines.Load() == 0 {
		f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		_, _ = f.WriteString("noise\n")
		_ = f.Close()
		time.Sleep(10 * time.Millisecond)
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	_, _ = f.WriteString("NVRM: Xid (PCI:0000:05:00): 13, pid=7, " + strings.Repeat("\x1b[31m", 20000) + "\n")
	_, _ = f.WriteString("NVRM: Xid (PCI:0000:05:00): 31, pid=42, name=vllm, MMU Fault\n")
	_ = f.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Code != 13 || got[1] != (Event{31, "0000:05:00", 42, "vllm"}) || st.Cut.Load() != 1 {
		t.Fatalf("got %+v, cut %d", got, st.Cut.Load())
	}
}
