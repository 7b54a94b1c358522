package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/rbee/hive/bus"
)

// job is one operation in flight or finished. Its fields are guarded by
// Jobs.mu.
type job struct {
	id       string
	op       Operation
	cancel   context.CancelFunc
	events   []bus.JobEvent
	seq      int
	dropped  int
	done     bool
	finished time.Time
}

// errNotFound and errBusy map to 404 and 503.
var (
	errNotFound = errors.New("job not found")
	errBusy     = errors.New("too many jobs")
)

// create registers and starts a job for body.
func (m *Jobs) create(ctx context.Context, body []byte) (bus.JobCreated, error) {
	op, err := ParseOperation(body)
	if err != nil {
		return bus.JobCreated{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running >= m.cfg.MaxJobs {
		return bus.JobCreated{}, fmt.Errorf("%w: %d jobs running (max %d); retry shortly", errBusy, m.running, m.cfg.MaxJobs)
	}
	jctx, cancel := context.WithCancel(ctx)
	j := &job{id: "job-" + uuid.NewString(), op: op, cancel: cancel}
	m.jobs[j.id] = j
	m.running++
	m.wg.Go(func() { m.execute(jctx, j) })
	return bus.JobCreated{JobID: j.id, SSEURL: "/v1/jobs/" + j.id + "/stream"}, nil
}

// execute runs j's operation and ends its narration with the marker that
// says how it ended.
func (m *Jobs) execute(ctx context.Context, j *job) {
	n := &narrator{m: m, j: j, fn: "rbee_hive::job_router::execute_operation"}
	n.say("route_job", "Executing operation: "+j.op.Name)
	err := m.run(ctx, n, j.op)
	end := bus.EndDone
	switch {
	case ctx.Err() != nil:
		end = bus.EndCancelled
	case err != nil:
		end = bus.EndErrorPfx + err.Error()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if j.dropped > 0 {
		m.log.Warn("job narration not kept for replay", "job", j.id, "lines", j.dropped, "total_all_jobs", m.droppedEvents)
		m.emitLocked(j, bus.JobEvent{Text: fmt.Sprintf("(%d narration lines were not kept for replay)\n", j.dropped)}, true)
	}
	m.emitLocked(j, bus.JobEvent{End: end}, true)
	j.done = true
	j.finished = m.cfg.Now()
	j.cancel()
	m.running--
}

// emitLocked numbers ev, keeps it for replay (bounded, unless keep) and
// publishes it. Publishing under the lock keeps the published order equal
// to Seq order.
func (m *Jobs) emitLocked(j *job, ev bus.JobEvent, keep bool) {
	j.seq++
	ev.Seq = j.seq
	if keep || len(j.events) < m.cfg.MaxEvents {
		j.events = append(j.events, ev)
	} else {
		j.dropped++
		m.droppedEvents++
	}
	b, _ := json.Marshal(ev)
	if err := m.nc.Publish(bus.JobEventsSubject(j.id), b); err != nil {
		m.log.Warn("publish job event", "job", j.id, "err", err)
	}
}

// narrator is how an operation talks to its job's stream.
type narrator struct {
	m  *Jobs
	j  *job
	fn string
}

func (n *narrator) say(action, msg string) {
	n.m.mu.Lock()
	defer n.m.mu.Unlock()
	n.m.emitLocked(n.j, bus.JobEvent{Text: narration(n.fn, action, msg)}, false)
}

func (n *narrator) sayf(action, format string, args ...any) {
	n.say(action, fmt.Sprintf(format, args...))
}

// cancelJob cancels a running job.
func (m *Jobs) cancelJob(id string) (bus.JobCancelled, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok || j.done {
		return bus.JobCancelled{}, fmt.Errorf("%w: job %s not found or already finished", errNotFound, id)
	}
	j.cancel()
	return bus.JobCancelled{JobID: id, Status: "cancelled"}, nil
}

// replay returns the events kept so far.
func (m *Jobs) replay(id string) (bus.JobReplay, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return bus.JobReplay{}, fmt.Errorf("%w: job %s not found (unknown, or finished more than %v ago)", errNotFound, id, m.cfg.Retention)
	}
	return bus.JobReplay{JobID: id, Events: append([]bus.JobEvent(nil), j.events...)}, nil
}

// prune forgets jobs finished more than Retention ago.
func (m *Jobs) prune() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	cut := m.cfg.Now().Add(-m.cfg.Retention)
	n := 0
	for id, j := range m.jobs {
		if j.done && j.finished.Before(cut) {
			delete(m.jobs, id)
			n++
		}
	}
	return n
}
