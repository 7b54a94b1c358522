// Package logtee writes a worker's output to its log file within a bound,
// from a process of its own (hive worker-log): the worker's stdout and
// stderr are a pipe to it. A worker that writes its log file itself can
// only be checked now and then: one writing 100 MB/s put 1.9 GB in the
// log directory between two checks 10 s apart. The writer rotates as it
// writes instead: past max bytes the log becomes <log>.1 (the one older
// copy kept) and a new log starts, so the pair never holds more than
// twice max. It outlives the hive (its own session) and ends when the
// worker and everything it started have closed the pipe, so a hive
// restarted meanwhile changes nothing for the worker.
package logtee

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Copy reads r to its end and writes it to path, rotating past max bytes.
// Files are opened without following a link. It returns the first error
// that stops it (never io.EOF).
func Copy(r io.Reader, path string, max int64) error {
	if max <= 0 {
		return errors.New("logtee: max bytes must be positive")
	}
	f, size, err := open(path)
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, rerr := r.Read(buf)
		for b := buf[:n]; len(b) > 0; {
			if size >= max {
				f.Close()
				if err := os.Rename(path, path+".1"); err != nil {
					return fmt.Errorf("logtee: rotate %s: %w", path, err)
				}
				if f, size, err = open(path); err != nil {
					return err
				}
			}
			chunk := b[:min(int64(len(b)), max-size)]
			w, err := f.Write(chunk)
			size += int64(w)
			if err != nil {
				return fmt.Errorf("logtee: write %s: %w", path, err)
			}
			b = b[w:]
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("logtee: read: %w", rerr)
		}
	}
}

// open opens path for appending (made 0600 if missing) and returns its
// size.
func open(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("logtee: %w", err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("logtee: %s is not a regular file", path)
	}
	return f, st.Size(), nil
}
