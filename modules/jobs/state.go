package jobs

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/rbee/hive/internal/procfs"
)

// stateFile is what the hive remembers of the workers it spawned, so that
// a hive started again (after kill -9, an upgrade, a crash) knows them:
// reports them as before, stops them through the API, counts them toward
// --max-workers. A process is the same one only if its pid and its start
// time (in clock ticks since boot) both match.
type stateFile struct {
	Version int          `json:"version"`
	Workers []stateEntry `json:"workers"`
}

type stateEntry struct {
	PID        int    `json:"pid"`
	StartTicks uint64 `json:"start_ticks"`
	Port       int    `json:"port"`
	WorkerID   string `json:"worker_id"`
	Model      string `json:"model"`
	Binary     string `json:"binary"`
	Log        string `json:"log"`
	Cgroup     string `json:"cgroup,omitempty"`
	// Exe is what the worker ran once healthy (/proc/<pid>/exe): the
	// binary, or a wrapper script's interpreter or what it exec'd.
	Exe string `json:"exe,omitempty"`
}

const stateVersion = 1

// maxStateBytes bounds the file read at start: 32 workers take ~10 KiB.
const maxStateBytes = 1 << 20

// saveLocked writes every spawned worker to the state file, atomically
// (a temporary file, fsync, rename): a crash mid-write leaves the old
// file. p.mu is held. A failed write is counted and logged; the caller
// that adds a worker refuses the spawn on it.
func (p *procManager) saveLocked() error {
	if p.statePath == "" {
		return nil
	}
	st := stateFile{Version: stateVersion, Workers: []stateEntry{}}
	for _, w := range p.procs {
		st.Workers = append(st.Workers, stateEntry{PID: w.pid, StartTicks: w.startTicks, Port: w.port, WorkerID: w.workerID,
			Model: w.model, Binary: w.binary, Log: w.logPath, Cgroup: w.cgroup, Exe: w.exe})
	}
	b, _ := json.Marshal(st)
	if err := writeAtomic(p.statePath, b); err != nil {
		p.stateErrors.Add(1)
		p.log.Error("worker state file not written: a restarted hive would not know its workers", "path", p.statePath, "err", err)
		return err
	}
	return nil
}

// tempPattern names the temporary files writeAtomic makes.
const tempPattern = ".workers-*.json"

func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), tempPattern)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // gone after the rename
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// openState makes the state directory ready before anything is read from
// it or written to it: the hive's own (privateDir), held by this hive
// alone (a lock file with its pid: two hives on one state file adopted
// each other's workers and each save erased the other's), with no
// temporary file left by a crash. The lock lasts until closeState. A
// directory another user may write, or another hive holds, is an error
// (the hive does not start); one it cannot write leaves it running
// without spawns (stateErr).
func (p *procManager) openState() error {
	if p.statePath == "" {
		return nil
	}
	dir := filepath.Dir(p.statePath)
	err := privateDir(dir)
	if errors.Is(err, errUntrusted) {
		return fmt.Errorf("jobs: worker state dir: %w", err)
	}
	var lock *os.File
	if err == nil {
		lock, err = os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	}
	if err != nil {
		// A directory the hive cannot make or write (a read-only image,
		// a missing volume) leaves it watching: spawns are refused with
		// the reason, since a worker the state cannot record would be
		// lost to a restarted hive.
		p.stateErr = fmt.Errorf("the worker state dir %s is not usable (%v): set --state-dir to a directory the hive may write", dir, err)
		p.log.Error("workers cannot be spawned: "+p.stateErr.Error(), "dir", dir)
		return nil
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := lock.ReadAt(b, 0)
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("jobs: worker state dir %s is in use by another hive (pid %s): give each hive its own --state-dir", dir, strings.TrimSpace(string(b[:n])))
		}
		return fmt.Errorf("jobs: lock worker state dir %s: %w", dir, err)
	}
	if err := lock.Truncate(0); err == nil {
		_, _ = lock.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	p.lock = lock
	if old, _ := filepath.Glob(filepath.Join(dir, tempPattern)); len(old) > 0 {
		for _, f := range old {
			_ = os.Remove(f)
		}
		p.log.Info("removed temporary state files left by an earlier run", "dir", dir, "files", len(old))
	}
	return nil
}

// closeState lets go of the state directory.
func (p *procManager) closeState() {
	if p.lock != nil {
		_ = p.lock.Close()
	}
}

// adopt reads the state file and takes back the workers still alive with
// the same identity; the others are dropped. A file another user could
// have written is not read, and an entry is taken back only when
// p.adoptable accepts it: the state names processes to signal, cgroups to
// kill and logs to truncate. It returns the adopted.
func (p *procManager) adopt() ([]*spawned, error) {
	if p.statePath == "" || p.stateErr != nil {
		return nil, nil
	}
	f, err := openPrivate(p.statePath)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st stateFile
	dec := json.NewDecoder(&limitedReader{f, maxStateBytes})
	if err := dec.Decode(&st); err != nil || st.Version != stateVersion {
		return nil, fmt.Errorf("worker state %s unreadable (version %d): %v", p.statePath, st.Version, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*spawned
	dropped := 0
	for _, e := range st.Workers {
		ticks, alive := startTicks(e.PID)
		if !alive || ticks != e.StartTicks || e.PID <= 1 {
			dropped++
			continue
		}
		if err := p.adoptable(e); err != nil {
			dropped++
			p.log.Error("a worker in the state file was not taken back", "pid", e.PID, "state", p.statePath, "reason", err)
			continue
		}
		w := &spawned{pid: e.PID, startTicks: e.StartTicks, port: e.Port, workerID: e.WorkerID, model: e.Model,
			binary: e.Binary, logPath: e.Log, cgroup: e.Cgroup, exe: e.Exe, adopted: true, exited: make(chan struct{})}
		p.procs[w.pid] = w
		out = append(out, w)
	}
	_ = p.saveLocked()
	if len(out) > 0 || dropped > 0 {
		p.log.Info("workers from before the restart", "adopted", len(out), "gone", dropped, "state", p.statePath)
	}
	return out, nil
}

type limitedReader struct {
	f *os.File
	n int64
}

func (r *limitedReader) Read(b []byte) (int, error) {
	if r.n <= 0 {
		return 0, fmt.Errorf("more than %d bytes", maxStateBytes)
	}
	if int64(len(b)) > r.n {
		b = b[:r.n]
	}
	n, err := r.f.Read(b)
	r.n -= int64(n)
	return n, err
}

// startTicks is a live process's start time from /proc/<pid>/stat (field
// 22, clock ticks since boot); alive is false for a process that is gone
// or a zombie.
func startTicks(pid int) (ticks uint64, alive bool) {
	st, err := procfs.ReadStat(pid)
	if err != nil || st.Zombie() {
		return 0, false
	}
	return st.StartTime, true
}
