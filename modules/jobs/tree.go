package jobs

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// procStat is what a stop needs of /proc/<pid>/stat.
type procStat struct {
	pid, ppid, pgrp int
	zombie          bool
}

// statFields are the fields of /proc/<pid>/stat after the command name,
// which may itself hold spaces and ')': f[0] is the state, f[1] the
// parent, f[2] the process group, f[19] the start time. nil when the
// process is gone.
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return nil
	}
	return strings.Fields(string(b[i+2:]))
}

// readProcStats reads every process's parent and process group; a
// process that goes while it reads is skipped.
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
		f := statFields(pid)
		if len(f) < 3 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		out = append(out, procStat{pid: pid, ppid: ppid, pgrp: pgrp, zombie: f[0] == "Z" || f[0] == "X"})
	}
	return out
}

// treeOf is every live process that belongs to a worker: in process group
// pgid (0: none), in the cgroup directory cg ("" : none), or descended from
// root (0: none). Zombies are gone for this purpose.
func treeOf(root, pgid int, cg string) []int {
	stats := readProcStats()
	in := map[int]bool{}
	for _, s := range stats {
		if !s.zombie && pgid > 0 && s.pgrp == pgid {
			in[s.pid] = true
		}
	}
	if cg != "" {
		if b, err := os.ReadFile(filepath.Join(cg, "cgroup.procs")); err == nil {
			for _, l := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(l); err == nil {
					in[pid] = true
				}
			}
		}
	}
	if root > 0 {
		kids := map[int][]int{}
		alive := map[int]bool{}
		for _, s := range stats {
			kids[s.ppid] = append(kids[s.ppid], s.pid)
			alive[s.pid] = !s.zombie
		}
		for todo := []int{root}; len(todo) > 0; {
			p := todo[len(todo)-1]
			todo = todo[:len(todo)-1]
			if alive[p] {
				in[p] = true
			}
			todo = append(todo, kids[p]...)
		}
	}
	out := make([]int, 0, len(in))
	for pid := range in {
		if pid != os.Getpid() {
			out = append(out, pid)
		}
	}
	return out
}

// signalTree sends sig to the process group, to the cgroup (cgroup.kill
// for SIGKILL where the kernel has it) and to every pid listed.
func signalTree(pgid int, cg string, pids []int, sig syscall.Signal) {
	if pgid > 0 {
		_ = syscall.Kill(-pgid, sig)
	}
	if cg != "" && sig == syscall.SIGKILL {
		_ = os.WriteFile(filepath.Join(cg, "cgroup.kill"), []byte("1"), 0o644)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig)
	}
}
