package jobs

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
)

// However much a job narrates (a 400-worker list, a huge error), its
// replay fits one NATS message and says what was not kept.
func TestNarrationBoundedByBytes(t *testing.T) {
	h := start(t, Config{CheckPause: time.Hour})
	h.gaps = true
	id, e := h.create(t, `{"operation":"hive_check"}`)
	if e.Error != "" {
		t.Fatal(e.Error)
	}
	h.m.mu.Lock()
	j := h.m.jobs[id]
	line := strings.Repeat("\x1bW", 700) // escapes double in JSON
	for range 2000 {
		h.m.emitLocked(j, wire.JobEvent{Text: line}, false)
	}
	h.m.emitLocked(j, wire.JobEvent{Text: strings.Repeat("y", 4<<20)}, false) // one giant line
	kept, dropped := j.bytes, j.dropped
	h.m.mu.Unlock()
	if kept > DefaultMaxJobBytes || dropped == 0 {
		t.Fatalf("kept %d bytes (max %d), dropped %d events", kept, DefaultMaxJobBytes, dropped)
	}
	ref, _ := json.Marshal(wire.JobRef{JobID: id})
	msg, err := h.nc.Request(wire.SubjectJobsReplay, ref, 5*time.Second)
	if err != nil {
		t.Fatalf("replay of a long job: %v", err)
	}
	if len(msg.Data) > 1<<20 {
		t.Fatalf("replay of %d bytes exceeds one NATS message", len(msg.Data))
	}
	cancelJob(t, h, id, "")
	evs := h.events(t, id, 5*time.Second)
	if !strings.Contains(allText(evs), "narration lines were not kept for replay") || endOf(evs) != wire.EndCancelled {
		t.Fatalf("end of a long job: %q", endOf(evs))
	}
}

// Finished jobs are forgotten oldest first past MaxRetained or
// MaxRetainedBytes, whatever the retention time.
func TestRetainedJobsBounded(t *testing.T) {
	h := start(t, Config{MaxRetained: 3, MaxRetainedBytes: 1 << 30, Retention: time.Hour})
	var ids []string
	for range 5 {
		id, _ := h.create(t, `{"operation":"model_list","hive_id":"h"}`)
		h.events(t, id, 5*time.Second)
		ids = append(ids, id)
	}
	h.m.mu.Lock()
	n, evicted := len(h.m.jobs), h.m.evicted
	_, oldest := h.m.jobs[ids[0]]
	_, newest := h.m.jobs[ids[4]]
	h.m.mu.Unlock()
	if n != 3 || evicted != 2 || oldest || !newest {
		t.Fatalf("kept %d jobs, evicted %d, oldest kept %v, newest kept %v", n, evicted, oldest, newest)
	}

	byBytes := start(t, Config{MaxRetained: 1000, MaxRetainedBytes: 1, Retention: time.Hour})
	if _, e := byBytes.create(t, `{"operation":"model_list","hive_id":"h"}`); e.Error != "" {
		t.Fatal(e.Error)
	}
	// The job is registered at create; it goes once it has finished.
	bustest.WaitFor(t, 5*time.Second, func() error {
		byBytes.m.mu.Lock()
		defer byBytes.m.mu.Unlock()
		if len(byBytes.m.jobs) != 0 || byBytes.m.keptBytes != 0 || byBytes.m.evicted != 1 {
			return fmt.Errorf("MaxRetainedBytes 1 keeps %d jobs, %d bytes", len(byBytes.m.jobs), byBytes.m.keptBytes)
		}
		return nil
	})
}

func TestExitText(t *testing.T) {
	// WaitStatus on Linux: low 7 bits the signal, or exit code << 8.
	if got := exitText(syscall.WaitStatus(9), nil); got != "signal: killed" {
		t.Errorf("SIGKILL: %q", got)
	}
	if got := exitText(syscall.WaitStatus(3<<8), nil); got != "exit status 3" {
		t.Errorf("exit 3: %q", got)
	}
}
