package jobs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/rbee/hive/bus/wire"
)

// Worker ports are chosen in [portMin, portMax], as the original did.
const (
	portMin = 9000
	portMax = 9999
)

// spawnWorker starts llm-worker-rbee-<type>, announces it, and waits for
// its /health.
func (m *Jobs) spawnWorker(ctx context.Context, n *narrator, op Operation) error {
	n.fn = "rbee_hive::job_router::worker_spawn"
	if err := m.procs.stateErr; err != nil {
		return err
	}
	bin := filepath.Join(m.cfg.WorkerDir, "llm-worker-rbee-"+op.Worker)
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("worker binary %s not found or not executable: install the %s worker there (--worker-dir)", bin, op.Worker)
	}
	port, err := m.freePort()
	if err != nil {
		return err
	}
	workerID := fmt.Sprintf("worker-%s-%d", op.Worker, port)
	n.sayf("worker_spawn_start", "Spawning %s for model %s on device %d, port %d", workerID, op.Model, op.Device, port)

	cmd, logPath, err := m.startWorker(bin, workerID, port, op)
	if err != nil {
		return err
	}
	ticks, _ := startTicks(cmd.Process.Pid) // alive: not reaped before procManager's wait4
	w := &spawned{pid: cmd.Process.Pid, startTicks: ticks, port: port, workerID: workerID, model: op.Model, binary: bin,
		logPath: logPath, exited: make(chan struct{})}
	_ = cmd.Process.Release()   // reaped by procManager, not by cmd.Wait
	cgMsg := m.placeInCgroup(w) // before w is shared: stop reads w.cgroup
	if err := m.procs.add(w); err != nil {
		m.procs.stop(w, m.grace())
		return fmt.Errorf("%s (PID %d) stopped: the worker state file could not record it (%v), so a restarted hive would not know it", workerID, w.pid, err)
	}
	m.unreserve(n.j) // the worker now counts as live itself
	m.announce(wire.SubjectWorkersStarted, w)
	n.sayf("worker_spawn_pid", "Started %s (PID: %d, port: %d), log %s", workerID, w.pid, port, logPath)
	if cgMsg != "" {
		n.say("worker_cgroup", cgMsg)
	}

	if err := m.waitHealthy(ctx, w); err != nil {
		m.procs.stop(w, m.grace())
		if ctx.Err() != nil {
			n.sayf("worker_spawn_cancel", "Spawn cancelled; stopped %s (PID: %d)", workerID, w.pid)
			return ctx.Err()
		}
		return fmt.Errorf("%s (PID %d) did not become healthy: %w; see %s", workerID, w.pid, err, logPath)
	}
	m.procs.healthy(w)
	n.sayf("worker_spawn_complete", "✅ Worker '%s' spawned (PID: %d, port: %d)", workerID, w.pid, port)
	return nil
}

// startWorker starts the worker's process in a group of its own, its
// output into its log under the log directory.
func (m *Jobs) startWorker(bin, workerID string, port int, op Operation) (*exec.Cmd, string, error) {
	if err := privateDir(m.cfg.LogDir); err != nil {
		return nil, "", fmt.Errorf("worker log directory: %w", err)
	}
	logPath := filepath.Join(m.cfg.LogDir, workerID+".log")
	rotateLog(logPath, m.cfg.MaxLogBytes) // a log left by an earlier worker on this port
	logf, err := m.logOutput(logPath)
	if err != nil {
		return nil, "", fmt.Errorf("worker log: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(bin,
		"--worker-id", workerID, "--model", op.Model, "--device", strconv.FormatUint(uint64(op.Device), 10),
		"--port", strconv.Itoa(port), "--queen-url", m.cfg.QueenURL)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = workerEnv(os.LookupEnv, op.Worker)
	// Its own process group: a signal to the hive's group (Ctrl-C in a
	// terminal) does not reach it, and stop can signal its children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", bin, err)
	}
	return cmd, logPath, nil
}

// freePort picks a port in [portMin, portMax] that no spawned worker holds
// and that can be bound right now.
func (m *Jobs) freePort() (int, error) {
	taken := m.procs.ports()
	for range 200 {
		p := portMin + rand.IntN(portMax-portMin+1)
		if taken[p] {
			continue
		}
		ln, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		return p, nil
	}
	return 0, errors.New("no free port in 9000-9999")
}

// waitHealthy asks the worker for its health until it answers 200 (at
// HealthPath; with NoHealthPath, until its port takes a connection), the
// worker exits, HealthTimeout passes or ctx ends.
func (m *Jobs) waitHealthy(ctx context.Context, w *spawned) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.HealthTimeout)
	defer cancel()
	addr := "127.0.0.1:" + strconv.Itoa(w.port)
	what := "healthy " + m.cfg.HealthPath
	if m.cfg.HealthPath == NoHealthPath {
		what = "connection on port " + strconv.Itoa(w.port)
	}
	wait := 50 * time.Millisecond
	for {
		if m.answers(ctx, addr) {
			return nil
		}
		m.procs.reap()
		select {
		case <-w.exited:
			return errors.New("it exited")
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("no %s within %v", what, m.cfg.HealthTimeout)
			}
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*3/2, 500*time.Millisecond)
	}
}

// answers is one health check of the worker at addr.
func (m *Jobs) answers(ctx context.Context, addr string) bool {
	if m.cfg.HealthPath == NoHealthPath {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+m.cfg.HealthPath, nil)
	resp, err := m.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// cgroup2Magic is CGROUP2_SUPER_MAGIC: placement happens only on a real
// cgroup v2 file system, never into a look-alike directory tree.
const cgroup2Magic = 0x63677270

// placeInCgroup moves w into CgroupRoot/llm/<port> when that tree is on a
// writable cgroup v2 file system. It returns what it did, or "".
func (m *Jobs) placeInCgroup(w *spawned) string {
	root := m.cfg.CgroupRoot
	if root == "" {
		return ""
	}
	probe := root
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		probe = filepath.Dir(root)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(probe, &st); err != nil || st.Type != cgroup2Magic {
		return ""
	}
	dir := filepath.Join(root, "llm", strconv.Itoa(w.port))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "cgroup placement skipped: " + err.Error()
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(w.pid)), 0o644); err != nil {
		return "cgroup placement skipped: " + err.Error()
	}
	w.cgroup = dir
	return "Placed in cgroup " + dir
}

func itoa(i int) string { return strconv.Itoa(i) }
