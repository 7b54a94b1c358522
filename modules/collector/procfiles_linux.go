package collector

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// procFiles keeps /proc open between ticks: the directory, listed again
// after a seek to its start, and each process's stat file, read again with
// one pread. Opening a /proc path walks it (a dentry lookup and a pid
// check per component); on an idle hive open and close were a tenth of
// its CPU, more than the reads. A stat descriptor names one process, not
// a pid: once that process is reaped, pread fails with ESRCH and the pid
// is opened again by path, so a reused pid is read as the new process.
type procFiles struct {
	root    string
	dir     int // -1 until opened
	dirBuf  []byte
	stat    map[int32]int
	io      map[int32]int // workers' io files, within the same bound
	holdMax int
}

func newProcFiles(root string, holdMax int) *procFiles {
	return &procFiles{root: root, dir: -1, stat: map[int32]int{}, io: map[int32]int{}, holdMax: holdMax}
}

// pids lists the numeric entries of the /proc directory into out. The
// directory stays open only where stat files are kept (holdMax > 0), so a
// table nobody closes holds nothing.
func (f *procFiles) pids(out []int32) ([]int32, error) {
	if f.dir >= 0 {
		if _, err := syscall.Seek(f.dir, 0, 0); err != nil {
			return nil, &os.PathError{Op: "seek", Path: f.root, Err: err}
		}
	} else {
		fd, err := openRetry(f.root, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: f.root, Err: err}
		}
		if f.holdMax > 0 {
			f.dir = fd
		} else {
			defer syscall.Close(fd)
		}
		if f.dirBuf == nil {
			f.dirBuf = make([]byte, 16<<10)
		}
		return f.list(fd, out)
	}
	return f.list(f.dir, out)
}

// list appends the pids in the directory fd, read from where it stands.
// Entries are linux_dirent64 records: inode (8 bytes), offset (8), record
// length (2), type (1), then the NUL-terminated name.
func (f *procFiles) list(fd int, out []int32) ([]int32, error) {
	for {
		n, err := syscall.Getdents(fd, f.dirBuf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "getdents", Path: f.root, Err: err}
		}
		if n <= 0 {
			return out, nil
		}
		for b := f.dirBuf[:n]; len(b) > 19; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen <= 19 || reclen > len(b) {
				break
			}
			if pid, ok := parsePid(b[19:reclen]); ok {
				out = append(out, pid)
			}
			b = b[reclen:]
		}
	}
}

// parsePid reads a NUL-terminated directory name made only of digits.
func parsePid(name []byte) (int32, bool) {
	var v int64
	for i, c := range name {
		if c == 0 {
			return int32(v), i > 0
		}
		if c < '0' || c > '9' {
			return 0, false
		}
		if v = v*10 + int64(c-'0'); v > 1<<31-1 {
			return 0, false
		}
	}
	return 0, false
}

// readStat appends the stat file of pid to buf: from its kept descriptor,
// else from its path, keeping the descriptor while there is room.
func (f *procFiles) readStat(pid int32, buf []byte) ([]byte, error) {
	return f.read(f.stat, pid, "stat", buf)
}

// readIO is readStat for the io file (a worker's, each tick).
func (f *procFiles) readIO(pid int32, buf []byte) ([]byte, error) {
	return f.read(f.io, pid, "io", buf)
}

func (f *procFiles) read(kept map[int32]int, pid int32, name string, buf []byte) ([]byte, error) {
	if fd, ok := kept[pid]; ok {
		if b, err := preadAll(fd, buf); err == nil {
			return b, nil
		}
		// That process is gone; the pid may name a new one.
		syscall.Close(fd)
		delete(kept, pid)
	}
	path := filepath.Join(f.root, strconv.Itoa(int(pid)), name)
	if len(f.stat)+len(f.io) >= f.holdMax {
		return readProcFile(path, buf, 0)
	}
	fd, b, err := openRead(path, buf)
	if err != nil {
		return nil, err
	}
	kept[pid] = fd
	return b, nil
}

// openRead opens path and appends the whole file to buf, returning the
// descriptor, still open, to read it again.
func openRead(path string, buf []byte) (int, []byte, error) {
	fd, err := openRetry(path, syscall.O_RDONLY|syscall.O_CLOEXEC)
	if err != nil {
		return -1, nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	b, err := preadAll(fd, buf)
	if err != nil {
		syscall.Close(fd)
		return -1, nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	return fd, b, nil
}

// drop closes the descriptors kept for pid.
func (f *procFiles) drop(pid int32) {
	for _, kept := range []map[int32]int{f.stat, f.io} {
		if fd, ok := kept[pid]; ok {
			syscall.Close(fd)
			delete(kept, pid)
		}
	}
}

// close closes every descriptor kept.
func (f *procFiles) close() {
	for pid := range f.stat {
		f.drop(pid)
	}
	for pid := range f.io {
		f.drop(pid)
	}
	if f.dir >= 0 {
		syscall.Close(f.dir)
		f.dir = -1
	}
}

// preadAll appends the whole file at fd to buf, read from its start. A
// /proc stat file is made whole by each read from offset 0, so a read
// that leaves room in buf has all of it; one that fills buf is read again
// with more room.
func preadAll(fd int, buf []byte) ([]byte, error) {
	base := len(buf)
	for {
		if cap(buf)-base < 512 {
			buf = append(buf[:cap(buf)], make([]byte, 1024)...)[:base]
		}
		n, err := syscall.Pread(fd, buf[base:cap(buf)], 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if base+n < cap(buf) {
			return buf[:base+n], nil
		}
		buf = append(buf[:cap(buf)], make([]byte, cap(buf))...)[:base]
	}
}

func openRetry(path string, flags int) (int, error) {
	for {
		fd, err := syscall.Open(path, flags, 0)
		if err != syscall.EINTR {
			return fd, err
		}
	}
}

// procFile is one /proc file of the machine (stat, meminfo) read again
// each tick from a kept descriptor, opened on first use and again after
// an error.
type procFile struct {
	path string
	fd   int // -1: not open
}

func newProcFile(path string) *procFile { return &procFile{path: path, fd: -1} }

// read appends the file to buf.
func (f *procFile) read(buf []byte) ([]byte, error) {
	if f.fd < 0 {
		fd, b, err := openRead(f.path, buf)
		if err == nil {
			f.fd = fd
		}
		return b, err
	}
	b, err := preadAll(f.fd, buf)
	if err != nil {
		f.close()
		return nil, &os.PathError{Op: "read", Path: f.path, Err: err}
	}
	return b, nil
}

func (f *procFile) close() {
	if f.fd >= 0 {
		syscall.Close(f.fd)
		f.fd = -1
	}
}
