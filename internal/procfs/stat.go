// Package procfs is the hive's one reader of /proc/<pid>/stat: the
// collector reads it from a kept-open file every tick, the jobs module by
// path when it lists a worker's tree or checks whom a pid names now. Both
// parse it here, without allocating.
package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Stat is what the hive uses of /proc/<pid>/stat.
type Stat struct {
	// Comm is the command name between the parentheses; it aliases the
	// parsed buffer.
	Comm  []byte
	State byte
	PPID  int32
	PGRP  int32
	Flags uint64
	// UTime and STime are clock ticks spent in user and kernel mode;
	// StartTime is clock ticks since boot at the start; RSS is pages.
	UTime, STime, StartTime, RSS uint64
}

// PFKthread is the kernel's PF_KTHREAD task flag.
const PFKthread = 0x00200000

// ClockTicks is USER_HZ, 100 on every Linux the hive runs on.
const ClockTicks = 100

// ErrStat is a stat line that does not parse.
var ErrStat = errors.New("malformed stat")

// Zombie reports whether the process has exited and awaits its parent
// (Z), or is dead (X).
func (s Stat) Zombie() bool { return s.State == 'Z' || s.State == 'X' }

// ParseStat parses one stat line. The command name may hold spaces and
// ')': the fields are those after its last ')'.
func ParseStat(b []byte) (Stat, error) {
	i := bytes.LastIndexByte(b, ')')
	lp := bytes.IndexByte(b, '(')
	if i < 0 || lp < 0 || lp > i || i+2 >= len(b) {
		return Stat{}, ErrStat
	}
	// Fields after the name, from 0: 0 state, 1 ppid, 2 pgrp, 6 flags,
	// 11 utime, 12 stime, 19 starttime, 21 rss. Parsed in place: no
	// string per field.
	var f [22][]byte
	rest := b[i+2:]
	for n := range f {
		rest = bytes.TrimLeft(rest, " ")
		j := bytes.IndexByte(rest, ' ')
		if j < 0 {
			j = len(rest)
		}
		if j == 0 {
			return Stat{}, ErrStat
		}
		f[n], rest = rest[:j], rest[j:]
	}
	s := Stat{Comm: b[lp+1 : i], State: f[0][0]}
	ppid, ok1 := atou(f[1])
	pgrp, ok2 := atou(f[2])
	var ok [6]bool
	s.Flags, ok[0] = atou(f[6])
	s.UTime, ok[1] = atou(f[11])
	s.STime, ok[2] = atou(f[12])
	s.StartTime, ok[3] = atou(f[19])
	s.RSS, ok[4] = atou(f[21])
	ok[5] = ok1 && ok2
	if ok != [6]bool{true, true, true, true, true, true} {
		return Stat{}, ErrStat
	}
	s.PPID, s.PGRP = int32(ppid), int32(pgrp)
	return s, nil
}

// ReadStat reads and parses /proc/<pid>/stat by path; the error of a
// process that is gone is the open's.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b)
}

// atou parses a decimal number without allocating.
func atou(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// ParseIO parses /proc/<pid>/io's read_bytes and write_bytes.
func ParseIO(b []byte) (read, write uint64, err error) {
	var got int
	for line := range bytes.SplitSeq(b, []byte{'\n'}) {
		k, v, ok := bytes.Cut(line, []byte(": "))
		if !ok {
			continue
		}
		switch string(k) {
		case "read_bytes":
			read, ok = atou(v)
		case "write_bytes":
			write, ok = atou(v)
		default:
			continue
		}
		if !ok {
			return 0, 0, fmt.Errorf("%s %q", k, v)
		}
		got++
	}
	if got != 2 {
		return 0, 0, errors.New("no read_bytes and write_bytes")
	}
	return read, write, nil
}
