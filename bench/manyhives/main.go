// Command manyhives measures what hives cost a hub cluster: the 3-node
// cluster of deployments/hub.conf (internal/hubcluster) with its R3
// history stream, first alone (the control), then with N real hive
// processes exporting to it (--worker-match "" --gpu-source none, each on
// its own port), over a window. It prints the hub's CPU and RSS per node
// and per hive, the message rate at a subscriber and in the stream, and
// the latency from a hive's tick to a subscriber on the hub. With
// -outage, it then stops every node for that long and measures the hives
// forwarding what they kept (drain.go).
// `make bench-hives HIVES=100` runs it; docs/SCALE.md records the output.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive/internal/hubcluster"
	"github.com/rbee/hive/internal/proctest"
)

func main() {
	hiveBin := flag.String("hive", "bin/hive", "the hive binary")
	natsBin := flag.String("nats-server", "bin/nats-server", "the nats-server binary")
	conf := flag.String("conf", "deployments/hub.conf", "the hub node config")
	streamJSON := flag.String("stream", "deployments/hub-stream.json", "the history stream")
	counts := flag.String("hives", "100", "hive counts to measure, comma-separated")
	window := flag.Duration("window", 30*time.Second, "measuring window")
	pace := flag.Int("pace", 4, "hives started per second (a start costs a core for a moment)")
	settle := flag.Duration("settle", 20*time.Second, "wait after the last hive attached, before measuring")
	outage := flag.Duration("outage", 0, "after the window, stop every hub node this long, start them and measure the hives' backlog draining (0: no outage)")
	flag.Parse()

	dir, err := os.MkdirTemp("", "manyhives-")
	check(err)
	defer os.RemoveAll(dir)
	cl, err := hubcluster.Start(*natsBin, *conf, dir, 3, hubcluster.Passwords{Leaf: "bench-leaf", Route: "bench-route", Admin: "bench-admin", Reader: "bench-reader", Historian: "bench-historian"})
	check(err)
	defer cl.Close()
	cleanups = append(cleanups, cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	readyCtx, readyCancel := context.WithTimeout(ctx, time.Minute)
	check(cl.Ready(readyCtx))
	readyCancel()
	stream, admin, err := cl.CreateStream(ctx, *streamJSON)
	check(err)
	defer admin.Close()

	fmt.Printf("machine: %d CPUs; hub: 3 nats-server nodes, stream R3 file; window %v\n", cpus(), *window)
	base := measure(ctx, cl, stream, nil, *window)
	base.print("control: no hive", 0, base)
	for _, s := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		check(err)
		hives := startHives(*hiveBin, cl.HiveEnv(), dir, n, *pace)
		cleanups = append(cleanups, func() { stopHives(hives) })
		waitAllExporting(ctx, cl, n)
		time.Sleep(*settle)
		m := measure(ctx, cl, stream, hives, *window)
		m.print(fmt.Sprintf("%d hives", n), n, base)
		if *outage > 0 {
			drain(ctx, cl, stream, n, *outage).print(n, base)
		}
		stopHives(hives)
		cleanups = cleanups[:len(cleanups)-1]
	}
}

type hiveProc struct {
	id  string
	cmd *exec.Cmd
}

func startHives(bin string, hubEnv []string, dir string, n, pace int) []*hiveProc {
	var out []*hiveProc
	for i := range n {
		id := fmt.Sprintf("bench-%04d", i)
		// Each hive has a state dir of its own: it keeps its telemetry for
		// the hub's history there (the hub store).
		cmd := exec.Command(bin, "--hive-id", id, "--listen", "127.0.0.1:"+strconv.Itoa(21000+i), "--nats-listen", "",
			"--queen-url", "", "--worker-match", "", "--gpu-source", "none", "--cgroup-root", "", "--log-level", "warn",
			"--state-dir", filepath.Join(dir, "state-"+id))
		cmd.Env = append(os.Environ(), hubEnv...) // the leaf password is on no command line
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		check(cmd.Start())
		out = append(out, &hiveProc{id: id, cmd: cmd})
		time.Sleep(time.Second / time.Duration(max(pace, 1))) // no start-up stampede
	}
	return out
}

func stopHives(hs []*hiveProc) {
	for _, h := range hs {
		_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGTERM)
	}
	for _, h := range hs {
		_ = h.cmd.Wait()
	}
}

// waitAllExporting waits until every hive's leafnode is on a hub node.
func waitAllExporting(ctx context.Context, cl *hubcluster.Cluster, n int) {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		total := 0
		for i := range cl.Nodes {
			names, err := cl.Leafz(ctx, i)
			if err == nil {
				total += len(names)
			}
		}
		if total >= n {
			return
		}
		if time.Now().After(deadline) {
			check(fmt.Errorf("%d of %d hives attached after 3 min", total, n))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

type result struct {
	window      time.Duration
	hubCPU      []float64 // % of a core per node
	hubRSS      []float64 // MiB per node
	hiveCPU     float64   // % of a core, all hives
	msgs        int       // at the subscriber
	hivesSeen   int
	lat         []float64 // ms
	streamMsgs  uint64    // stored during the window
	streamBytes uint64
}

// measure reads the hub's and the hives' CPU over the window and what a
// subscriber on hub-1 receives.
func measure(ctx context.Context, cl *hubcluster.Cluster, stream jetstream.Stream, hives []*hiveProc, window time.Duration) result {
	r := result{window: window}
	nc, err := nats.Connect(cl.ClientURL(0), cl.TLS())
	check(err)
	defer nc.Close()
	var mu sync.Mutex
	seen := map[string]bool{}
	_, err = nc.Subscribe("hive.telemetry", func(m *nats.Msg) {
		now := time.Now()
		var ev struct {
			HiveID    string `json:"hive_id"`
			Timestamp string `json:"timestamp"`
		}
		if json.Unmarshal(m.Data, &ev) != nil {
			return
		}
		ts, err := time.Parse(time.RFC3339Nano, ev.Timestamp)
		mu.Lock()
		defer mu.Unlock()
		r.msgs++
		seen[ev.HiveID] = true
		if err == nil {
			r.lat = append(r.lat, float64(now.Sub(ts).Microseconds())/1000)
		}
	})
	check(err)
	check(nc.Flush())
	time.Sleep(2 * time.Second) // interest reaches every hive
	mu.Lock()
	r.msgs, r.lat, seen = 0, nil, map[string]bool{}
	mu.Unlock()

	info0, err := stream.Info(ctx)
	check(err)
	hub0 := make([]float64, len(cl.Nodes))
	for i := range cl.Nodes {
		hub0[i] = cpu(cl.PID(i))
	}
	hive0 := hivesCPU(hives)
	t0 := time.Now()
	time.Sleep(window)
	el := time.Since(t0).Seconds()
	for i := range cl.Nodes {
		r.hubCPU = append(r.hubCPU, 100*(cpu(cl.PID(i))-hub0[i])/el)
		r.hubRSS = append(r.hubRSS, rssMiB(cl.PID(i)))
	}
	r.hiveCPU = 100 * (hivesCPU(hives) - hive0) / el
	info1, err := stream.Info(ctx)
	check(err)
	r.streamMsgs = info1.State.Msgs - info0.State.Msgs
	r.streamBytes = info1.State.Bytes - info0.State.Bytes
	mu.Lock()
	r.hivesSeen = len(seen)
	slices.Sort(r.lat)
	mu.Unlock()
	return r
}

// hivesCPU is the CPU seconds all hives have used.
func hivesCPU(hives []*hiveProc) float64 {
	sum := 0.0
	for _, h := range hives {
		sum += cpu(h.cmd.Process.Pid)
	}
	return sum
}

func (r result) print(label string, n int, base result) {
	el := r.window.Seconds()
	fmt.Printf("\n== %s\n", label)
	var cpu, rss, cpu0, rss0 float64
	for i := range r.hubCPU {
		fmt.Printf("hub-%d: CPU %.2f %% of a core, RSS %.1f MiB\n", i+1, r.hubCPU[i], r.hubRSS[i])
		cpu, rss = cpu+r.hubCPU[i], rss+r.hubRSS[i]
		cpu0, rss0 = cpu0+base.hubCPU[i], rss0+base.hubRSS[i]
	}
	fmt.Printf("hub total: CPU %.2f %% of a core, RSS %.1f MiB\n", cpu, rss)
	if n == 0 {
		return
	}
	fmt.Printf("per hive at the hub (over the control): CPU %.4f %% of a core, RSS %.3f MiB\n", (cpu-cpu0)/float64(n), (rss-rss0)/float64(n))
	fmt.Printf("hives: %d seen at the subscriber; all hives together CPU %.1f %% of a core (%.3f %% each)\n", r.hivesSeen, r.hiveCPU, r.hiveCPU/float64(n))
	fmt.Printf("messages: %.1f/s at a subscriber on hub-1, %.1f/s stored (%.0f B/s, %.0f B per message)\n",
		float64(r.msgs)/el, float64(r.streamMsgs)/el, float64(r.streamBytes)/el, float64(r.streamBytes)/max(float64(r.streamMsgs), 1))
	if len(r.lat) > 0 {
		fmt.Printf("latency hive tick -> subscriber: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d messages)\n",
			q(r.lat, 0.5), q(r.lat, 0.99), r.lat[len(r.lat)-1], len(r.lat))
	}
}

func q(sorted []float64, p float64) float64 {
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func rssMiB(pid int) float64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func cpus() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

// cleanups stop what was started when check gives up.
var cleanups []func()

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "manyhives:", err)
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		os.Exit(1)
	}
}

// cpu is a process's user+system CPU time in seconds; 0 once it is gone.
func cpu(pid int) float64 {
	c, _ := proctest.CPUSeconds(pid)
	return c
}
