package jobs

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
}

const stateVersion = 1

// maxStateBytes bounds the file read at start: 32 workers take ~10 KiB.
const maxStateBytes = 1 << 20

// saveLocked writes every spawned worker to the state file, atomically
// (a temporary file, fsync, rename): a crash mid-write leaves the old
// file. p.mu is held.
func (p *procManager) saveLocked() {
	if p.statePath == "" {
		return
	}
	st := stateFile{Version: stateVersion, Workers: []stateEntry{}}
	for _, w := range p.procs {
		st.Workers = append(st.Workers, stateEntry{PID: w.pid, StartTicks: w.startTicks, Port: w.port, WorkerID: w.workerID,
			Model: w.model, Binary: w.binary, Log: w.logPath, Cgroup: w.cgroup})
	}
	b, _ := json.Marshal(st)
	if err := writeAtomic(p.statePath, b); err != nil {
		p.stateErrors.Add(1)
		p.log.Warn("worker state file not written: a restarted hive would not know its workers", "path", p.statePath, "err", err)
	}
}

func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".workers-*.json")
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

// adopt reads the state file and takes back the workers still alive with
// the same identity; the others are dropped. It returns the adopted.
func (p *procManager) adopt() ([]*spawned, error) {
	if p.statePath == "" {
		return nil, nil
	}
	f, err := os.Open(p.statePath)
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
		w := &spawned{pid: e.PID, startTicks: e.StartTicks, port: e.Port, workerID: e.WorkerID, model: e.Model,
			binary: e.Binary, logPath: e.Log, cgroup: e.Cgroup, adopted: true, exited: make(chan struct{})}
		p.procs[w.pid] = w
		out = append(out, w)
	}
	p.saveLocked()
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
	f := statFields(pid)
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	t, err := strconv.ParseUint(f[19], 10, 64)
	return t, err == nil
}
