package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/text"
)

// job is one operation in flight or finished. Its fields are guarded by
// Jobs.mu.
type job struct {
	id       string
	op       Operation
	cancel   context.CancelFunc
	events   []wire.JobEvent
	bytes    int // encoded size of events
	seq      int
	dropped  int
	done     bool
	reserved bool // holds a worker slot (a spawn not yet started)
	finished time.Time
}

// DefaultMaxJobBytes bounds one job's kept narration: with the replay's
// envelope it stays under NATS's default 1 MiB message.
const DefaultMaxJobBytes = 512 << 10

// maxEventBytes bounds one narration entry; a longer one is cut.
const maxEventBytes = 128 << 10

// errNotFound, errBusy and errTooManyWorkers map to the not_found, busy
// and conflict codes.
var (
	errNotFound       = &bus.ReplyError{Code: wire.CodeNotFound, Msg: "job not found"}
	errBusy           = &bus.ReplyError{Code: wire.CodeBusy, Msg: "too many jobs", RetryAfter: 1}
	errTooManyWorkers = &bus.ReplyError{Code: wire.CodeConflict, Msg: "too many workers"}
)

// create registers and starts a job for body.
func (m *Jobs) create(ctx context.Context, body json.RawMessage) (wire.JobCreated, error) {
	op, err := ParseOperation(body)
	if err != nil {
		return wire.JobCreated{}, err
	}
	if err := m.checkVRAM(ctx, op); err != nil {
		return wire.JobCreated{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.running >= m.cfg.MaxJobs {
		return wire.JobCreated{}, fmt.Errorf("%w: %d jobs running (max %d); retry shortly", errBusy, m.running, m.cfg.MaxJobs)
	}
	j := &job{id: "job-" + uuid.NewString(), op: op}
	if op.Name == "worker_spawn" {
		if live := m.procs.count() + m.reserved; live >= m.cfg.MaxWorkers {
			return wire.JobCreated{}, fmt.Errorf("%w: %d workers spawned by this hive are live or starting (max %d, --max-workers); stop one first",
				errTooManyWorkers, live, m.cfg.MaxWorkers)
		}
		m.reserved++
		j.reserved = true
	}
	jctx, cancel := context.WithCancel(ctx)
	j.cancel = cancel
	m.jobs[j.id] = j
	m.running++
	m.wg.Go(func() { m.execute(jctx, j) })
	return wire.JobCreated{JobID: j.id, SSEURL: "/v1/jobs/" + j.id + "/stream"}, nil
}

// execute runs j's operation and ends its narration with the marker that
// says how it ended.
func (m *Jobs) execute(ctx context.Context, j *job) {
	n := &narrator{m: m, j: j, fn: "rbee_hive::job_router::execute_operation"}
	n.say("route_job", "Executing operation: "+j.op.Name)
	err := m.dispatch(ctx, n, j.op)
	m.unreserve(j)
	end := wire.EndDone
	switch {
	case ctx.Err() != nil:
		end = wire.EndCancelled
	case err != nil:
		end = wire.EndErrorPfx + text.Truncate(strings.ReplaceAll(err.Error(), "\n", " "), 1024)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if j.dropped > 0 {
		m.log.Warn("job narration not kept for replay", "job", j.id, "lines", j.dropped, "total_all_jobs", m.droppedEvents)
		m.emitLocked(j, wire.JobEvent{Text: fmt.Sprintf("(%d narration lines were not kept for replay)\n", j.dropped)}, true)
	}
	m.emitLocked(j, wire.JobEvent{End: end}, true)
	result := "done"
	switch {
	case end == wire.EndCancelled:
		result = "cancelled"
	case end != wire.EndDone:
		result = "error"
	}
	m.finishedTotal.WithLabelValues(j.op.Name, result).Inc()
	j.done = true
	j.finished = m.cfg.Now()
	j.cancel()
	m.running--
	m.finished = append(m.finished, j)
	m.keptBytes += int64(j.bytes)
	m.evictLocked()
}

// unreserve gives back j's worker slot, once.
func (m *Jobs) unreserve(j *job) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if j.reserved {
		j.reserved = false
		m.reserved--
	}
}

// evictLocked forgets the oldest finished jobs while more are kept than
// MaxRetained or MaxRetainedBytes allow.
func (m *Jobs) evictLocked() {
	for len(m.finished) > 0 && (len(m.finished) > m.cfg.MaxRetained || m.keptBytes > m.cfg.MaxRetainedBytes) {
		m.forgetOldestLocked()
		m.evicted++
	}
}

func (m *Jobs) forgetOldestLocked() {
	j := m.finished[0]
	m.finished[0] = nil
	m.finished = m.finished[1:]
	m.keptBytes -= int64(j.bytes)
	delete(m.jobs, j.id)
}

// emitLocked numbers ev, keeps it for replay (bounded, unless keep) and
// publishes it. Publishing under the lock keeps the published order equal
// to Seq order.
func (m *Jobs) emitLocked(j *job, ev wire.JobEvent, keep bool) {
	j.seq++
	ev.Seq = j.seq
	ev.Text = cutLines(ev.Text, maxEventBytes)
	b, _ := json.Marshal(ev)
	if keep || (len(j.events) < m.cfg.MaxEvents && j.bytes+len(b) <= m.cfg.MaxJobBytes) {
		j.events = append(j.events, ev)
		j.bytes += len(b)
	} else {
		j.dropped++
		m.droppedEvents++
	}
	if err := m.nc.Publish(wire.JobEventsSubject(j.id), b); err != nil {
		m.log.Warn("publish job event", "job", j.id, "err", err)
	}
}

// cutLines bounds an event's text to about max bytes without cutting a
// line: a client that parses a line (the JSON of a list) gets it whole or
// not at all, and a last line says what was left out.
func cutLines(s string, max int) string {
	if len(s) <= max {
		return s
	}
	keep := strings.LastIndexByte(s[:max], '\n') + 1 // 0 when the first line is too long
	cut := s[keep:]
	return s[:keep] + fmt.Sprintf("... (%d bytes in %d lines left out: over the %d KiB event bound)\n",
		len(cut), strings.Count(strings.TrimSuffix(cut, "\n"), "\n")+1, max>>10)
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
	n.m.emitLocked(n.j, wire.JobEvent{Text: narration(n.fn, action, msg)}, false)
}

func (n *narrator) sayf(action, format string, args ...any) {
	n.say(action, fmt.Sprintf(format, args...))
}

// cancelJob cancels a running job.
func (m *Jobs) cancelJob(id string) (wire.JobCancelled, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok || j.done {
		return wire.JobCancelled{}, fmt.Errorf("%w: job %s not found or already finished", errNotFound, id)
	}
	j.cancel()
	return wire.JobCancelled{JobID: id, Status: "cancelled"}, nil
}

// replay returns the events kept so far.
func (m *Jobs) replay(id string) (wire.JobReplay, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return wire.JobReplay{}, fmt.Errorf("%w: job %s not found (unknown, or finished more than %v ago)", errNotFound, id, m.cfg.Retention)
	}
	return wire.JobReplay{JobID: id, Events: append([]wire.JobEvent(nil), j.events...)}, nil
}

// prune forgets jobs finished more than Retention ago. Jobs finish in
// the order of m.finished, so the old ones are at its front.
func (m *Jobs) prune() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	cut := m.cfg.Now().Add(-m.cfg.Retention)
	n := 0
	for len(m.finished) > 0 && m.finished[0].finished.Before(cut) {
		m.forgetOldestLocked()
		n++
	}
	return n
}
