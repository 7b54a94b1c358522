//go:build !linux

package collector

import (
	"os"
	"path/filepath"
	"strconv"
)

// procFiles without Linux's getdents and /proc semantics reads by path
// every tick and keeps nothing open.
type procFiles struct {
	root    string
	holdMax int
}

func newProcFiles(root string, holdMax int) *procFiles {
	return &procFiles{root: root, holdMax: holdMax}
}

func (f *procFiles) pids(out []int32) ([]int32, error) {
	ents, err := os.ReadDir(f.root)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if pid, err := strconv.ParseInt(e.Name(), 10, 32); err == nil {
			out = append(out, int32(pid))
		}
	}
	return out, nil
}

func (f *procFiles) readStat(pid int32, buf []byte) ([]byte, error) {
	return readProcFile(filepath.Join(f.root, strconv.Itoa(int(pid)), "stat"), buf, 0)
}

func (f *procFiles) readIO(pid int32, buf []byte) ([]byte, error) {
	return readProcFile(filepath.Join(f.root, strconv.Itoa(int(pid)), "io"), buf, 0)
}

func (f *procFiles) drop(int32) {}

func (f *procFiles) close() {}

// procFile is one /proc file of the machine, read by path.
type procFile struct{ path string }

func newProcFile(path string) *procFile { return &procFile{path: path} }

func (f *procFile) read(buf []byte) ([]byte, error) { return readProcFile(f.path, buf, 0) }

func (f *procFile) close() {}
