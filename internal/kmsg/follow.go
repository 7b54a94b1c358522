package kmsg

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// MaxLine is the longest line read whole; the rest of a longer one is
// skipped and counted (a kmsg record is at most 1 KiB; a file may hold
// anything).
const MaxLine = 4096

// Stats counts what a follower read.
type Stats struct {
	Lines, Xids, Cut atomic.Uint64
}

// Follow reads the log at path from its end as it grows and calls fn for
// each Xid, until ctx ends. /dev/kmsg gives one record per read; a file
// is read again every poll at its end. It returns the open's error (no
// permission: the caller says so once); a record the kernel overwrote
// before it was read (EPIPE) is skipped.
func Follow(ctx context.Context, path string, poll time.Duration, st *Stats, fn func(Event)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = f.Close() })
	defer stop()
	if _, err := f.Seek(0, io.SeekEnd); err != nil && !errors.Is(err, syscall.ESPIPE) {
		return err
	}
	l := &lines{st: st, fn: fn}
	buf := make([]byte, MaxLine)
	for ctx.Err() == nil {
		n, err := f.Read(buf)
		l.feed(buf[:n])
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			wait(ctx, poll)
		case errors.Is(err, syscall.EPIPE):
		case ctx.Err() != nil:
			return nil
		default:
			return err
		}
	}
	return nil
}

// lines splits what is read into lines, each at most MaxLine: the part
// of a longer line past it is dropped, and the line counted as cut.
type lines struct {
	st      *Stats
	fn      func(Event)
	pending []byte
	cut     bool
}

func (l *lines) feed(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		part := b
		if i >= 0 {
			part, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if room := MaxLine - len(l.pending); len(part) > room {
			part, l.cut = part[:room], true
		}
		l.pending = append(l.pending, part...)
		if i >= 0 {
			l.line()
		}
	}
}

func (l *lines) line() {
	l.st.Lines.Add(1)
	if l.cut {
		l.st.Cut.Add(1)
	}
	if ev, ok := Parse(l.pending); ok {
		l.st.Xids.Add(1)
		l.fn(ev)
	}
	l.pending, l.cut = l.pending[:0], false
}

func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
