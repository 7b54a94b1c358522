package jobs

import (
	"io"
	"os"
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
	st, err := os.Stat(path)
	if err != nil || st.Size() <= max {
		return false
	}
	src, err := os.Open(path)
	if err != nil {
		return false
	}
	defer src.Close()
	dst, err := os.OpenFile(path+".1", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return false
	}
	_, cerr := io.Copy(dst, io.LimitReader(src, st.Size()))
	if err := dst.Close(); cerr != nil || err != nil {
		return false
	}
	return os.Truncate(path, 0) == nil
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
