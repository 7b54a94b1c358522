package jobs

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"syscall"
)

// rotateLog keeps a worker's log within max bytes: past it, the log is
// copied to path.1 (the one older copy kept) and truncated. The worker
// writes with O_APPEND, so its next write lands at the new end; copying
// rather than renaming keeps the descriptor the worker holds valid. It
// reports whether it rotated. max <= 0 turns rotation off.
func rotateLog(path string, max int64) bool {
	if max <= 0 {
		return false
	}
	// Neither file is followed if it is a link: a planted
	// <log>.1 -> /etc/shadow must not be written through.
	src, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() <= max {
		return false
	}
	dst, err := os.OpenFile(path+".1", os.O_CREATE|os.O_WRONLY|os.O_TRUNC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return false
	}
	_, cerr := io.Copy(dst, io.LimitReader(src, st.Size()))
	if err := dst.Close(); cerr != nil || err != nil {
		return false
	}
	return src.Truncate(0) == nil
}

// rotateLogs bounds every spawned worker's log; the reaper calls it now
// and then.
func (m *Jobs) rotateLogs() {
	for _, w := range m.procs.all() {
		if w.logPath != "" && rotateLog(w.logPath, m.cfg.MaxLogBytes) {
			m.logsRotated.Add(1)
		}
	}
}

// logOutput is what a spawned worker's stdout and stderr go to: a pipe to
// the log writer (Config.LogCommand), which bounds the log as it writes,
// or else the log file itself. The caller closes it once the worker
// holds its own descriptor.
func (m *Jobs) logOutput(logPath string) (*os.File, error) {
	if len(m.cfg.LogCommand) == 0 {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, err
		}
		if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
			f.Close()
			return nil, fmt.Errorf("%s is not a regular file", logPath)
		}
		_ = f.Chmod(0o600) // a log made by an older hive was 0644
		return f, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	args := append(slices.Clone(m.cfg.LogCommand[1:]), "--file", logPath, "--max-bytes", strconv.FormatInt(m.cfg.MaxLogBytes, 10))
	cmd := exec.Command(m.cfg.LogCommand[0], args...)
	cmd.Stdin = r
	cmd.Env = []string{} // none of the hive's settings or secrets
	// Its own session: it outlives a hive restarted meanwhile, and a
	// signal to the worker's group does not cut the worker's last words.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start the log writer: %w", err)
	}
	m.procs.helper(cmd.Process.Pid)
	_ = cmd.Process.Release() // reaped by procManager
	return w, nil
}
