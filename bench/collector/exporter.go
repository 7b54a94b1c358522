package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startExporter runs process-exporter as an operator would to get what
// the hive sends: one group per worker (its pid in the group name), the
// children folded in, on a port the kernel picks, scraped once a second
// by a goroutine of this program (the scrape is the exporter's work).
// Its defaults otherwise (threads and smaps on), as the comparison of
// issue 35 ran it.
func startExporter(bin, dir, pattern string) *exec.Cmd {
	conf := fmt.Sprintf("process_names:\n  - name: \"{{.Comm}}:{{.PID}}\"\n    cmdline:\n      - %q\n", pattern)
	if err := os.WriteFile(dir+"/process-exporter.yml", []byte(conf), 0o644); err != nil {
		fail(err)
	}
	c := exec.Command(bin, "-config.path", dir+"/process-exporter.yml", "-web.listen-address", "127.0.0.1:0")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil { // its log (where it listens) is not wanted
		fail(err)
	}
	started(c)
	port := 0
	for deadline := time.Now().Add(10 * time.Second); port == 0; {
		if time.Now().After(deadline) {
			fail(fmt.Errorf("process-exporter (pid %d) is not listening", c.Process.Pid))
		}
		time.Sleep(50 * time.Millisecond)
		port = listenPort(c.Process.Pid)
	}
	go func() {
		url := "http://127.0.0.1:" + strconv.Itoa(port) + "/metrics"
		for t := time.NewTicker(time.Second); ; <-t.C {
			if resp, err := http.Get(url); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()
	return c
}

// listenPort is a TCP port pid listens on, read from its
// sockets' inodes in /proc/net/tcp; 0 while it has none.
func listenPort(pid int) int {
	if ps := listenPorts(pid); len(ps) > 0 {
		return ps[0]
	}
	return 0
}

// listenPorts are the TCP ports pid listens on.
func listenPorts(pid int) []int {
	inodes := map[string]bool{}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		if ino, ok := strings.CutPrefix(l, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	var out []int
	// Go listens on 0.0.0.0 with a dual-stack IPv6 socket: tcp6 too.
	v4, _ := os.ReadFile("/proc/net/tcp")
	v6, _ := os.ReadFile("/proc/net/tcp6")
	for _, line := range strings.Split(string(v4)+string(v6), "\n") {
		f := strings.Fields(line)
		// local_address rem_address st ... inode: state 0A is LISTEN.
		if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
			continue
		}
		_, hexPort, _ := strings.Cut(f[1], ":")
		p, _ := strconv.ParseInt(hexPort, 16, 32)
		out = append(out, int(p))
	}
	return out
}

// hiveURL is the hive's HTTP base: of its listening ports, the one
// whose /health answers 200 (the pprof listener's does not).
func hiveURL(pid int) string {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, p := range listenPorts(pid) {
			base := "http://127.0.0.1:" + strconv.Itoa(p)
			if resp, err := http.Get(base + "/health"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return base
				}
			}
		}
	}
	fail(fmt.Errorf("the hive (pid %d) serves no /health", pid))
	return ""
}

// cpuProfile asks the hive's pprof listener (HIVE_PPROF_LISTEN on port
// 0: found among the hive's listening sockets, like the exporter's) for
// a CPU profile of d.
func cpuProfile(pid int, d time.Duration) chan []byte {
	out := make(chan []byte, 1)
	go func() {
		var port int
		for _, p := range listenPorts(pid) {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/", p))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					port = p
					break
				}
			}
		}
		if port == 0 {
			fail(fmt.Errorf("the hive (pid %d) serves no pprof", pid))
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", port, int(d.Seconds())))
		if err != nil {
			fail(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			fail(err)
		}
		out <- b
	}()
	return out
}
