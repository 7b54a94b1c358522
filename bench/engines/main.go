// Command engines measures what reading the workers' engines costs the
// hive: N fake vLLM engines (internal/engine/testdata/vllm-0.10.txt, a
// 43 KB page, counters moving), a worker process naming each one's port,
// and the real hive run twice over the same workers, with engine reads
// every second and with them off. CPU from /proc over the window, RSS at
// its end. `make bench-engines` runs it; docs/BENCHMARKS.md records it.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rbee/hive/internal/engine/enginetest"
	"github.com/rbee/hive/internal/proctest"
)

func main() {
	hiveBin := flag.String("hive", "bin/hive", "the hive binary")
	n := flag.Int("engines", 50, "fake engines")
	window := flag.Duration("window", 30*time.Second, "measuring window per run")
	flag.Parse()
	page, err := enginetest.Fixture("vllm-0.10.txt")
	if err != nil {
		fail(err)
	}
	const tag = "llm-worker-benchengine"
	var cleanup []func()
	defer func() {
		for _, f := range cleanup {
			f()
		}
	}()
	for i := range *n {
		e := enginetest.New(page)
		e.Set("queue", float64(i%7))
		e.Set("running", 8)
		e.Set("kv", 0.5)
		e.Grow("gen", 400)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fail(err)
		}
		srv := &http.Server{Handler: e, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		w := exec.Command("sh", "-c", "sleep 100000; true", tag, "--model", "m"+strconv.Itoa(i), "--port", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
		w.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := w.Start(); err != nil {
			fail(err)
		}
		cleanup = append(cleanup, func() { _ = syscall.Kill(-w.Process.Pid, syscall.SIGKILL); _ = w.Wait(); _ = srv.Close() })
	}
	fmt.Printf("%d fake vLLM engines, %d-byte pages, window %v; load average %s", *n, len(page), *window, loadavg())
	fmt.Printf("%-22s %12s %10s\n", "hive", "CPU % core", "RSS MiB")
	for _, run := range []struct{ name, interval string }{{"engine reads off", "0"}, {"engine reads every 1s", "1s"}, {"engine reads off", "0"}, {"engine reads every 1s", "1s"}} {
		cpuPct, rss := measure(*hiveBin, tag, run.interval, *window)
		fmt.Printf("%-22s %12.2f %10.1f\n", run.name, cpuPct, rss)
	}
	fmt.Printf("load average at end: %s", loadavg())
}

func measure(bin, tag, interval string, window time.Duration) (cpuPct, rssMiB float64) {
	c := exec.Command(bin, "--port", "0", "--nats-listen", "", "--queen-url", "", "--gpu-source", "none", "--cgroup-root", "",
		"--worker-match", "cmdline:"+tag, "--log-level", "error")
	c.Env = append(os.Environ(), "HIVE_ENGINE_INTERVAL="+interval, "HIVE_STATE_DIR=-")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		fail(err)
	}
	defer func() { _ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL); _ = c.Wait() }()
	time.Sleep(5 * time.Second) // started, every engine read, buffers grown
	c0, err := proctest.CPUSeconds(c.Process.Pid)
	if err != nil {
		fail(err)
	}
	t0 := time.Now()
	time.Sleep(window)
	c1, err := proctest.CPUSeconds(c.Process.Pid)
	if err != nil {
		fail(err)
	}
	return 100 * (c1 - c0) / time.Since(t0).Seconds(), float64(rss(c.Process.Pid)) / (1 << 20)
}

func rss(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return string(b)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench-engines:", err)
	os.Exit(1)
}
