package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/shirou/gopsutil/v3/process"

	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/text"
	"github.com/rbee/hive/internal/workerproc"
)

// workerInfo is one worker process as the list and get operations report
// it (the last narration line is this JSON, as the Hive UI expects).
// Cmdline shows the executable and the documented worker flags only: other
// arguments may be secrets.
type workerInfo struct {
	PID     int    `json:"pid"`
	Port    string `json:"port,omitempty"`
	Model   string `json:"model,omitempty"`
	Spawned bool   `json:"spawned_by_hive"`
	Cmdline string `json:"cmdline"`
}

// workerProcess describes pid if it is a worker: spawned by this hive, or
// with a command line matching the worker pattern.
func (m *Jobs) workerProcess(ctx context.Context, pid int) (workerInfo, bool, error) {
	p := &process.Process{Pid: int32(pid)}
	args, err := p.CmdlineSliceWithContext(ctx)
	if err != nil || len(args) == 0 {
		return workerInfo{}, false, fmt.Errorf("process %d not found", pid)
	}
	_, spawned := m.procs.get(pid)
	if pid == os.Getpid() || (!spawned && !m.match.Load().Match(args)) {
		return workerInfo{}, false, nil
	}
	// Any local user names its own processes: what is shown of one is
	// bounded like a telemetry event's fields.
	info := workerInfo{PID: pid, Spawned: spawned, Cmdline: text.Clip(workerproc.Describe(args), maxCmdlineShown)}
	info.Port, _ = workerproc.Arg(args, "port")
	info.Port = text.Clip(info.Port, 16)
	info.Model, _ = workerproc.Arg(args, "model")
	info.Model = text.Clip(info.Model, wire.MaxModelBytes)
	return info, true, nil
}

func (m *Jobs) listWorkers(ctx context.Context, n *narrator) error {
	n.fn = "rbee_hive::job_router::worker_process_list"
	pids, err := process.PidsWithContext(ctx)
	if err != nil {
		return fmt.Errorf("list processes: %w", err)
	}
	list := []workerInfo{}
	for _, pid := range pids {
		if info, ok, _ := m.workerProcess(ctx, int(pid)); ok {
			list = append(list, info)
		}
	}
	n.sayf("worker_proc_list", "Found %d worker process(es)", len(list))
	for _, w := range list {
		n.sayf("worker_proc_list_entry", "  PID %d  port %s  model %s  %s", w.PID, w.Port, w.Model, w.Cmdline)
	}
	b, shown := listJSON(list, maxEventBytes-1024) // room for the narration's header
	n.say("worker_proc_list_json", string(b))
	if shown < len(list) {
		n.sayf("worker_proc_list_cut", "The JSON above lists the first %d of %d workers: the list is over the %d KiB event bound", shown, len(list), maxEventBytes>>10)
	}
	return nil
}

// maxCmdlineShown bounds the command line a worker listing shows.
const maxCmdlineShown = 1024

// listJSON is the JSON array of the longest prefix of list that fits in
// max bytes, and how many workers it holds: a whole JSON line, never one
// cut in the middle.
func listJSON(list []workerInfo, max int) ([]byte, int) {
	b, _ := json.Marshal(list)
	if len(b) <= max {
		return b, len(list)
	}
	n, size := 0, 2 // the brackets
	for _, w := range list {
		wb, _ := json.Marshal(w)
		if size+len(wb)+1 > max {
			break
		}
		size += len(wb) + 1
		n++
	}
	b, _ = json.Marshal(list[:n])
	return b, n
}

func (m *Jobs) getWorker(ctx context.Context, n *narrator, pid int) error {
	n.fn = "rbee_hive::job_router::worker_process_get"
	info, ok, err := m.workerProcess(ctx, pid)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("process %d is not a worker", pid)
	}
	b, _ := json.Marshal(info)
	n.say("worker_proc_get", string(b))
	return nil
}

// deleteWorker stops a worker: SIGTERM, SIGKILL after StopGrace. A pid
// that is not a worker is refused.
func (m *Jobs) deleteWorker(ctx context.Context, n *narrator, pid int) error {
	n.fn = "rbee_hive::job_router::worker_process_delete"
	// The worker is the process that had pid both before and after its
	// command line was read: every signal of this stop goes to it (or its
	// tree) and to no process that takes the pid later.
	start, alive := startTicks(pid)
	info, ok, err := m.workerProcess(ctx, pid)
	if err != nil {
		return err
	}
	if again, _ := startTicks(pid); !alive || again != start {
		return fmt.Errorf("process %d not found", pid)
	}
	if !ok {
		return fmt.Errorf("refusing to stop process %d: it is not a worker", pid)
	}
	if w, spawned := m.procs.get(pid); spawned {
		n.sayf("worker_proc_del", "Stopping %s (PID %d, port %d) and every process it started", w.workerID, pid, w.port)
		left := m.procs.stop(w, m.grace())
		// The reaper announces the stop; it may already have, and a second
		// announcement is harmless.
		m.announce(wire.SubjectWorkersStopped, w)
		if len(left) > 0 {
			return fmt.Errorf("worker PID %d stopped, but %d of its processes survived SIGKILL: %v", pid, len(left), left)
		}
		n.sayf("worker_proc_del_ok", "Worker PID %d stopped, nothing of it left", pid)
		return nil
	}
	// Not our child: its process group if it leads one, and its
	// descendants, SIGTERM, then SIGKILL to what is left after the grace.
	pgid, _ := syscall.Getpgid(pid)
	// A group it does not lead (a shell's) is not its own.
	tree := func() []procID { return treeOf(procID{pid, start}, pgid == pid, "") }
	n.sayf("worker_proc_del", "Stopping worker PID %d (port %s) and every process it started", pid, info.Port)
	signalTree("", tree(), syscall.SIGTERM)
	if grace := m.grace(); !waitTreeGone(ctx, tree, grace) {
		left := tree()
		n.sayf("worker_proc_del_kill", "PID %d: %d process(es) still running after %v; sending SIGKILL", pid, len(left), grace)
		signalTree("", left, syscall.SIGKILL)
		waitTreeGone(ctx, tree, 5*time.Second)
	}
	if left := tree(); len(left) > 0 {
		return fmt.Errorf("worker PID %d: %d of its processes survived SIGKILL: %v", pid, len(left), pids(left))
	}
	if err := m.nc.PublishJSON(wire.SubjectWorkersStopped, wire.WorkerEvent{PID: pid, Group: "llm", Instance: info.Port, Model: info.Model}); err != nil {
		m.log.Warn("announce stopped worker", "pid", pid, "err", err)
	}
	n.sayf("worker_proc_del_ok", "Worker PID %d stopped", pid)
	return nil
}

// waitTreeGone polls until tree lists nothing or d passes.
func waitTreeGone(ctx context.Context, tree func() []procID, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if len(tree()) == 0 {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return len(tree()) == 0
}
