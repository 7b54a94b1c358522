package jobs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/rbee/hive/internal/workerproc"
)

// The hive usually runs as root, and what it reads from its state
// directory (pids to signal, cgroups to kill, logs to truncate) and writes
// into its log directory must not be anyone else's to plant. A directory
// or file is trusted only when this process's user owns it and neither
// its group nor others may write it; files are opened without following
// a symbolic link.

// errUntrusted marks a directory or file another user could have written.
var errUntrusted = errors.New("jobs: not private to the hive's user")

// privateDir makes dir (0700) if it is missing and checks that it is the
// hive's own: a directory, owned by this user, writable by no one else. A
// directory of the hive's own that group or others may read or enter is
// made 0700 (logs and the state name processes and models).
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if err := owned(dir, st); err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// owned checks that st (of path) belongs to this process's user and that
// neither group nor others may write it.
func owned(path string, st os.FileInfo) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil // not a Unix file system: nothing to check against
	}
	if uid := uint32(os.Geteuid()); sys.Uid != uid {
		return fmt.Errorf("%w: %s is owned by uid %d, the hive runs as uid %d (chown it, or choose another)", errUntrusted, path, sys.Uid, uid)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o; chmod go-w, or choose another)", errUntrusted, path, st.Mode().Perm())
	}
	return nil
}

// openPrivate opens an existing file for reading without following a
// symbolic link, and checks it as owned does.
func openPrivate(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil {
		err = owned(path, st)
	}
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// within reports whether path, cleaned, lies under dir.
func within(dir, path string) bool {
	if dir == "" || !filepath.IsAbs(path) {
		return false
	}
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(path))
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// runsBinary reports whether pid runs the executable bin (also when the
// file was replaced since the process started: "bin (deleted)").
func runsBinary(pid int, bin string) bool {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return false
	}
	return exe == bin || exe == bin+" (deleted)"
}

// adoptable says whether a worker of the state file may be taken back:
// its binary is a worker of --worker-dir, its process runs that binary
// (or the executable the hive saw it run once it was healthy: a wrapper
// script's interpreter or what it execs) with the --worker-id the hive
// gave it, its log lies in --worker-log-dir and its cgroup under
// --cgroup-root. The state file is the hive's own, but a planted one
// named a root process, a 70 MB file to truncate and a cgroup to kill.
func (m *Jobs) adoptable(e stateEntry) error {
	if filepath.Dir(e.Binary) != filepath.Clean(m.cfg.WorkerDir) || !strings.HasPrefix(filepath.Base(e.Binary), "llm-worker-rbee-") {
		return fmt.Errorf("binary %q is not a worker of %s", e.Binary, m.cfg.WorkerDir)
	}
	if !runsBinary(e.PID, e.Binary) && (e.Exe == "" || !runsBinary(e.PID, e.Exe)) {
		return fmt.Errorf("process %d does not run %s", e.PID, e.Binary)
	}
	if id, _ := workerproc.Arg(cmdline(e.PID), "worker-id"); id == "" || id != e.WorkerID {
		return fmt.Errorf("process %d is not worker %q", e.PID, e.WorkerID)
	}
	if e.Log != "" && filepath.Dir(e.Log) != filepath.Clean(m.cfg.LogDir) {
		return fmt.Errorf("log %q is not in %s", e.Log, m.cfg.LogDir)
	}
	if e.Cgroup != "" && !within(m.cfg.CgroupRoot, e.Cgroup) {
		return fmt.Errorf("cgroup %q is not under %s", e.Cgroup, m.cfg.CgroupRoot)
	}
	return nil
}

// exeOf is what /proc/<pid>/exe names, "" when unreadable.
func exeOf(pid int) string {
	exe, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	return strings.TrimSuffix(exe, " (deleted)")
}

// cmdline is a process's arguments (up to 16 KiB), nil when unreadable.
func cmdline(pid int) []string {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil
	}
	defer f.Close()
	b := make([]byte, 16<<10)
	n, _ := io.ReadFull(f, b)
	return strings.Split(strings.TrimRight(string(b[:n]), "\x00"), "\x00")
}
