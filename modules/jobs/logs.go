package jobs

import (
	"io"
	"os"
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
