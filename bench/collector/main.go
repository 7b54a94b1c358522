// Command collector measures the hive's collector against the floor
// program, in one run on this machine: N worker-like processes, the real
// hive binary and bench/floorcollector side by side, the CPU each used
// over a window (from /proc), and the tick jitter an SSE client sees.
// Where Debian's prometheus-process-exporter is installed it runs beside
// them too, one group per worker pid, scraped once a second: what an
// operator would otherwise run. `make bench-collector` runs it;
// docs/BENCHMARKS.md records the output.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rbee/hive/internal/proctest"
)

func main() {
	hiveBin := flag.String("hive", "bin/hive", "the hive binary")
	floorBin := flag.String("floor", "bin/floorcollector", "the floor program")
	counts := flag.String("workers", "100,1000", "worker counts to measure")
	window := flag.Duration("window", 30*time.Second, "measuring window per count")
	exporter := flag.String("exporter", "prometheus-process-exporter", "process-exporter binary, looked up in PATH; \"\" or not found: not run")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the hive over each window to FILE-<workers>.pprof")
	flag.Parse()
	if *exporter != "" {
		if p, err := exec.LookPath(*exporter); err == nil {
			*exporter = p
		} else {
			fmt.Fprintf(os.Stderr, "bench-collector: %s not found, not compared (apt install prometheus-process-exporter)\n", *exporter)
			*exporter = ""
		}
	}
	fmt.Printf("load average at start: %s", loadavg())
	fmt.Printf("%-8s %10s %10s %7s %12s %7s %12s %12s %12s\n", "workers", "hive %cpu", "floor %cpu", "ratio", "p-e %cpu", "ratio", "tick p50", "tick p99", "arrival p99")
	for _, s := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fail(err)
		}
		measure(*hiveBin, *floorBin, *exporter, *profile, n, *window)
	}
	fmt.Printf("load average at end: %s", loadavg())
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return string(b)
}

func measure(hiveBin, floorBin, exporterBin, profile string, n int, window time.Duration) {
	const pattern = "llm-worker-bench"
	defer startWorkers(pattern, n)()
	dir, err := os.MkdirTemp("", "bench-collector-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	// Settings by environment, which an older hive ignores where it lacks
	// them: this measures older binaries too.
	env := []string{"HIVE_STATE_DIR=-"}
	if profile != "" {
		env = append(env, "HIVE_PPROF_LISTEN=127.0.0.1:0")
	}
	hive := start(env, hiveBin, "--port", "0", "--nats-listen", "", "--queen-url", "", "--gpu-source", "none",
		"--cgroup-root", "", "--worker-match", "cmdline:"+pattern, "--log-level", "error")
	defer stop(hive)
	base := hiveURL(hive.Process.Pid)
	floor := start(nil, floorBin, "-match", pattern)
	defer stop(floor)
	var pe *exec.Cmd
	if exporterBin != "" {
		pe = startExporter(exporterBin, dir, pattern)
		defer stop(pe)
	}

	stamps := make(chan [2]time.Time, 1024) // the event's timestamp, its arrival
	go follow(base+"/v1/heartbeats/stream", n, stamps)
	time.Sleep(3 * time.Second) // warm-up: first samples, caches filled
	var prof chan []byte
	if profile != "" {
		prof = cpuProfile(hive.Process.Pid, window)
	}
	h0, f0, p0 := cpu(hive.Process.Pid), cpu(floor.Process.Pid), cpuOf(pe)
	t0 := time.Now()
	ts, at := gather(stamps, window)
	el := time.Since(t0).Seconds()
	hc, fc := (cpu(hive.Process.Pid)-h0)/el*100, (cpu(floor.Process.Pid)-f0)/el*100
	pc := (cpuOf(pe) - p0) / el * 100
	if prof != nil {
		if err := os.WriteFile(fmt.Sprintf("%s-%d.pprof", profile, n), <-prof, 0o644); err != nil {
			fail(err)
		}
	}
	tick, arrival := jitter(ts), jitter(at)
	peCPU, peRatio := "-", "-"
	if pe != nil {
		peCPU, peRatio = fmt.Sprintf("%.2f", pc), fmt.Sprintf("%.3fx", hc/pc)
	}
	fmt.Printf("%-8d %10.2f %10.2f %6.2fx %12s %7s %10.2fms %10.2fms %10.2fms\n", n, hc, fc, hc/fc, peCPU, peRatio, q(tick, 0.5), q(tick, 0.99), q(arrival, 0.99))
}

// startWorkers starts n worker-named processes, each naming a port
// nothing listens on, and returns what kills them.
func startWorkers(pattern string, n int) (kill func()) {
	var workers []*exec.Cmd
	kill = func() {
		for _, w := range workers {
			_ = syscall.Kill(-w.Process.Pid, syscall.SIGKILL)
			_ = w.Wait()
		}
	}
	for i := range n {
		w := exec.Command("sh", "-c", "sleep 100000; true", pattern, "--model", "m"+strconv.Itoa(i), "--port", strconv.Itoa(20000+i))
		w.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := w.Start(); err != nil {
			kill()
			fail(err)
		}
		started(w)
		workers = append(workers, w)
	}
	return kill
}

// gather takes the events' timestamps and arrivals for window.
func gather(stamps <-chan [2]time.Time, window time.Duration) (ts, at []time.Time) {
	deadline := time.After(window)
	for {
		select {
		case t := <-stamps:
			ts, at = append(ts, t[0]), append(at, t[1])
		case <-deadline:
			return ts, at
		}
	}
}

// jitter is how far each gap between times is from one second, in ms,
// sorted.
func jitter(ts []time.Time) []float64 {
	var out []float64
	for i := 1; i < len(ts); i++ {
		out = append(out, float64((ts[i].Sub(ts[i-1])-time.Second).Abs())/float64(time.Millisecond))
	}
	slices.Sort(out)
	return out
}

func q(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return -1
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// follow reads the SSE stream and sends each event's timestamp once the
// event has all n workers.
func follow(url string, n int, out chan<- [2]time.Time) {
	for {
		resp, err := http.Get(url)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
			if !ok {
				continue
			}
			var ev struct {
				Timestamp string            `json:"timestamp"`
				Workers   []json.RawMessage `json:"workers"`
			}
			if json.Unmarshal(data, &ev) != nil || len(ev.Workers) < n {
				continue
			}
			if t, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err == nil {
				out <- [2]time.Time{t, time.Now()}
			}
		}
		resp.Body.Close()
	}
}

func start(env []string, bin string, args ...string) *exec.Cmd {
	c := exec.Command(bin, args...)
	c.Env = append(os.Environ(), env...)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		fail(err)
	}
	started(c)
	return c
}

func stop(c *exec.Cmd) {
	_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	_ = c.Wait()
}

// cpuOf is cpu of c, 0 for none.
func cpuOf(c *exec.Cmd) float64 {
	if c == nil {
		return 0
	}
	return cpu(c.Process.Pid)
}

// cpu is utime+stime of pid in seconds.
func cpu(pid int) float64 {
	c, err := proctest.CPUSeconds(pid)
	if err != nil {
		fail(err)
	}
	return c
}

// groups are the process groups this program started: fail kills them,
// since os.Exit runs no deferred stop.
var groups struct {
	sync.Mutex
	pids []int
}

func started(c *exec.Cmd) {
	groups.Lock()
	groups.pids = append(groups.pids, c.Process.Pid)
	groups.Unlock()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench-collector:", err)
	groups.Lock()
	for _, pid := range groups.pids {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	os.Exit(1)
}
