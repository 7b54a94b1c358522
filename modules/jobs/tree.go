package jobs

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/rbee/hive/internal/procfs"
	"golang.org/x/sys/unix"
)

// procID names one process for as long as it lives: its pid and its start
// time (clock ticks since boot). A stop lists the processes it means with
// their ids and signals only a process that still has the id it was
// listed with, so a pid the kernel handed to another process meanwhile
// (reaped, then reused: a local user can cycle pids) is never signalled.
type procID struct {
	pid   int
	start uint64
}

// procStat is what a stop needs of /proc/<pid>/stat.
type procStat struct {
	procID
	ppid, pgrp int
	zombie     bool
}

// readProcStats reads every process's parent, process group and start
// time; a process that goes while it reads is skipped.
func readProcStats() []procStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := make([]procStat, 0, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := procfs.ReadStat(pid)
		if err != nil {
			continue
		}
		out = append(out, procStat{procID: procID{pid, st.StartTime}, ppid: int(st.PPID), pgrp: int(st.PGRP), zombie: st.Zombie()})
	}
	return out
}

// treeOf is every live process that belongs to the worker root: root
// itself while it has the same start time, its descendants, the members
// of its process group when it leads one (ownGroup), and of the cgroup
// directory cg ("": none). A root whose pid now names another process
// has no tree of its own, and a group whose leader's pid now names
// another process is another group. Zombies are gone for this purpose.
func treeOf(root procID, ownGroup bool, cg string) []procID {
	stats := readProcStats()
	byPID := make(map[int]procStat, len(stats))
	for _, s := range stats {
		byPID[s.pid] = s
	}
	in := map[int]procID{}
	add := func(s procStat) {
		if !s.zombie && s.pid != os.Getpid() {
			in[s.pid] = s.procID
		}
	}
	// The leader gone, its pid stays the group's (the kernel hands out no
	// pid that is a live group's id): the members left are the worker's.
	if leader, ok := byPID[root.pid]; ownGroup && (!ok || leader.procID == root) {
		for _, s := range stats {
			if s.pgrp == root.pid {
				add(s)
			}
		}
	}
	if cg != "" {
		if b, err := os.ReadFile(filepath.Join(cg, "cgroup.procs")); err == nil {
			for _, l := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(l); err == nil {
					if s, ok := byPID[pid]; ok {
						add(s)
					}
				}
			}
		}
	}
	if s, ok := byPID[root.pid]; ok && s.procID == root {
		kids := map[int][]procStat{}
		for _, s := range stats {
			kids[s.ppid] = append(kids[s.ppid], s)
		}
		for todo := []procStat{s}; len(todo) > 0; {
			p := todo[len(todo)-1]
			todo = todo[:len(todo)-1]
			add(p)
			todo = append(todo, kids[p.pid]...)
		}
	}
	out := make([]procID, 0, len(in))
	for _, id := range in {
		out = append(out, id)
	}
	return out
}

// pids lists the pids of ids, for messages.
func pids(ids []procID) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = id.pid
	}
	return out
}

// signalTree sends sig to every process listed, each only while it is
// the process listed, and for SIGKILL to the cgroup too (cgroup.kill where
// the kernel has it: the hive made that directory, and nothing else lives
// in it).
func signalTree(cg string, ids []procID, sig syscall.Signal) {
	if cg != "" && sig == syscall.SIGKILL {
		_ = os.WriteFile(filepath.Join(cg, "cgroup.kill"), []byte("1"), 0o644)
	}
	for _, id := range ids {
		_ = signalProc(id, sig)
	}
}

// errNotSame says a pid now names another process (or none).
var errNotSame = errors.New("jobs: the process is gone or its pid names another")

// signalProc sends sig to id through a pidfd: the descriptor is opened
// first, then the start time checked, so the signal reaches the process
// whose start time was checked even if the pid is reused in between.
// Where the kernel has no pidfd (before 5.3), it checks and kills, which
// leaves the window of one system call.
func signalProc(id procID, sig syscall.Signal) error {
	fd, err := unix.PidfdOpen(id.pid, 0)
	if err != nil && !errors.Is(err, unix.ENOSYS) {
		return errNotSame // ESRCH: gone
	}
	if t, alive := startTicks(id.pid); !alive || t != id.start {
		if fd >= 0 && err == nil {
			_ = unix.Close(fd)
		}
		return errNotSame
	}
	if err != nil { // ENOSYS
		return syscall.Kill(id.pid, sig)
	}
	defer unix.Close(fd)
	return unix.PidfdSendSignal(fd, sig, nil, 0)
}
