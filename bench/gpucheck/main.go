// Command gpucheck checks the hive against a GPU: the real card with
// nvidia-smi and a PyTorch worker (gpu_probe.py), or, with -fake, a fake
// nvidia-smi that answers from the fake workers' state in the same format
// the real card printed (fake.go). `make gpu-check` runs it.
//
// It starts the static hive, then workers whose command line carries
// `llm-worker --model gpu-probe --port 9400`, and checks from the SSE
// stream and /capabilities what an operator relies on: the GPU's name,
// VRAM and compute capability, each worker's vram_mb against nvidia-smi's,
// gpu_util_pct while busy and idle, two workers on one GPU told apart, and
// what the collector costs with the GPU query. One line per check; the
// exit status is 1 if any failed.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/proctest"
)

func main() {
	if filepath.Base(os.Args[0]) == "nvidia-smi" {
		os.Exit(fakeSMI(os.Args[1:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "fake-probe" {
		os.Exit(fakeProbe())
	}
	cfg := config{}
	flag.StringVar(&cfg.hive, "hive", "bin/hive", "the hive binary")
	flag.StringVar(&cfg.probe, "probe", "bench/gpucheck/gpu_probe.py", "the PyTorch worker")
	flag.StringVar(&cfg.python, "python", "python3", "Python with PyTorch")
	flag.BoolVar(&cfg.fake, "fake", false, "use the fake nvidia-smi and fake workers (no GPU here)")
	flag.StringVar(&cfg.out, "out", "", "directory for the hive's log, the last event and recordings of nvidia-smi (default: a temporary one)")
	flag.BoolVar(&cfg.record, "record", false, "record every nvidia-smi query's output per phase under -out/record (fixtures)")
	flag.DurationVar(&cfg.window, "window", 30*time.Second, "window over which the collector's CPU is measured")
	flag.IntVar(&cfg.port, "port", 17935, "the hive's HTTP port (0: any free one)")
	flag.StringVar(&cfg.source, "source", "auto", "the hive's --gpu-source: auto, nvml or smi")
	flag.Parse()
	c, err := newCheck(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gpucheck:", err)
		os.Exit(2)
	}
	defer c.cleanup()
	c.run()
	c.cleanup()
	if c.failed > 0 {
		fmt.Printf("gpucheck: %d of %d checks failed\n", c.failed, c.checks)
		os.Exit(1)
	}
	fmt.Printf("gpucheck: all %d checks passed\n", c.checks)
}

type config struct {
	hive, probe, python, out string
	source                   string
	fake, record             bool
	window                   time.Duration
	port                     int
}

func (c *check) run() {
	card, err := c.card()
	if err != nil {
		c.fail("card", "nvidia-smi: %v", err)
		return
	}
	c.info("card", "%s, %d MiB, compute capability %s, driver %s", card.name, card.totalMiB, card.cc, card.driver)
	c.recordPhase("0-idle")

	if err := c.startHive(); err != nil {
		c.fail("hive", "%v", err)
		return
	}
	c.checkCaps(card)
	c.checkSource()
	go c.follow()

	a, ok := c.busyWorker(card)
	if !ok {
		return
	}
	b, ok := c.secondWorker(a, card)
	if !ok {
		return
	}
	a.set("idle")
	b.set("idle")
	c.checkIdle([]*probe{a, b}, 20*time.Second)
	c.cost("two idle workers")
	c.recordPhase("3-idle-held")

	for _, p := range []*probe{a, b} {
		p.set("exit")
	}
	for _, p := range []*probe{a, b} {
		c.checkGone(p, 30*time.Second)
	}
	c.saveLastEvent()
	c.utilSource()
}

// busyWorker starts worker a, busy on 4 GiB, and checks its share, its
// VRAM, the node's figures and GPM against the card.
func (c *check) busyWorker(hw card) (*probe, bool) {
	a, err := c.startProbe("a", 4096, "busy")
	if err != nil {
		c.fail("worker", "%v", err)
		return nil, false
	}
	c.info("worker", "pid %d holds %d MiB (PyTorch reserved %d MiB) on %s", a.pid, a.ready.HeldMiB, a.ready.TorchReservedMiB, a.ready.Device)
	if !c.waitWorker(a, 30*time.Second) {
		return nil, false
	}
	c.settle()
	busy := c.samples(a, 5*time.Second)
	c.check("busy util", median(busy, util) > 50, "gpu_util_pct median %.1f over %d events while busy (want > 50)", median(busy, util), len(busy))
	c.checkVRAM(a, hw)
	c.checkNode(hw)
	c.checkGPM(hw, true)
	c.cost("one busy worker")
	c.recordPhase("1-busy")
	c.timeQueries()
	return a, true
}

// secondWorker starts worker b at 25 % duty beside a and checks that the
// two are told apart.
func (c *check) secondWorker(a *probe, hw card) (*probe, bool) {
	b, err := c.startProbe("b", 2048, "duty 25")
	if err != nil {
		c.fail("second worker", "%v", err)
		return nil, false
	}
	if c.waitWorker(b, 30*time.Second) {
		c.settle()
		both := c.samplesAll([]*probe{a, b}, 6*time.Second)
		ua, ub := median(both[a.pid], util), median(both[b.pid], util)
		c.check("two workers", ua-ub >= 20, "one GPU, a busy %.1f %% and b at 25 %% duty %.1f %% (want per-process figures, a - b >= 20)", ua, ub)
		c.checkShares(both[a.pid], both[b.pid])
		c.checkVRAM(b, hw)
		c.checkNode(hw)
		c.recordPhase("2-two")
	}
	return b, true
}

// utilSource reports what the hive logged as the source of gpu_util_pct.
func (c *check) utilSource() {
	b, _ := os.ReadFile(filepath.Join(c.cfg.out, "hive.log"))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "gpu_util_pct is") {
			_, msg, _ := strings.Cut(l, "msg=")
			c.info("util source", "the hive logged: %s", msg)
		}
	}
}

func (c *check) checkCaps(card card) {
	var caps struct {
		Devices []struct {
			ID                string  `json:"id"`
			Name              string  `json:"name"`
			DeviceType        string  `json:"device_type"`
			VRAMGB            uint64  `json:"vram_gb"`
			ComputeCapability *string `json:"compute_capability"`
		} `json:"devices"`
	}
	raw, err := c.get("/capabilities")
	if err == nil {
		err = json.Unmarshal(raw, &caps)
	}
	if err != nil {
		c.fail("capabilities", "%v", err)
		return
	}
	c.save("capabilities.json", raw)
	for _, d := range caps.Devices {
		if d.DeviceType != "gpu" {
			continue
		}
		cc := ""
		if d.ComputeCapability != nil {
			cc = *d.ComputeCapability
		}
		ok := d.Name == card.name && d.VRAMGB == card.totalMiB/1024 && cc == card.cc
		c.check("capabilities", ok, "%s %q, %d GB, compute capability %s (nvidia-smi: %q, %d MiB, %s)", d.ID, d.Name, d.VRAMGB, cc, card.name, card.totalMiB, card.cc)
		return
	}
	c.fail("capabilities", "no GPU among %s", raw)
}

// checkVRAM compares a worker's vram_mb with what nvidia-smi says its
// process holds, read right after the event.
func (c *check) checkVRAM(p *probe, card card) {
	ev, ok := c.last(p.pid)
	if !ok {
		c.fail("vram "+p.name, "no event")
		return
	}
	used, err := c.appMiB(p.pid)
	if err != nil {
		c.fail("vram "+p.name, "nvidia-smi: %v", err)
		return
	}
	diff := float64(ev.VRAMMB) - float64(used)
	c.check("vram "+p.name, used > 0 && abs(diff) <= 0.05*float64(used),
		"vram_mb %d, nvidia-smi %d MiB for pid %d (%+.1f %%; the worker allocated %d MiB)", ev.VRAMMB, used, p.pid, 100*diff/float64(max(used, 1)), p.ready.HeldMiB)
	c.check("total vram "+p.name, ev.TotalVRAMMB == card.totalMiB, "total_vram_mb %d, card %d MiB", ev.TotalVRAMMB, card.totalMiB)
}

func (c *check) checkIdle(ps []*probe, limit time.Duration) {
	start := time.Now()
	for _, p := range ps {
		var got float64 = -1
		ok := c.waitFor(limit-time.Since(start), func() bool {
			ev, ok := c.last(p.pid)
			got = float64(ev.GPUUtilPct)
			return ok && ev.GPUUtilPct <= 5
		})
		c.check("idle util "+p.name, ok, "gpu_util_pct %.1f %.1f s after the worker stopped its kernels (want <= 5)", got, time.Since(start).Seconds())
	}
}

func (c *check) checkGone(p *probe, limit time.Duration) {
	if err := p.wait(limit); err != nil {
		c.fail("exit "+p.name, "%v", err)
		return
	}
	exited := time.Now()
	ok := c.waitFor(10*time.Second, func() bool { return c.absentSince(p.pid, exited) })
	c.check("gone "+p.name, ok, "an event after worker %d exited lists it no more", p.pid)
}

// cost measures the hive's CPU (its own and its nvidia-smi children's)
// over the window, and the mean tick from its tick histogram.
func (c *check) cost(what string) {
	cpu0, err := proctest.CPUSecondsWithChildren(c.hivePID())
	sum0, n0, err2 := c.tickStats()
	if err != nil || err2 != nil {
		c.fail("cost", "%v %v", err, err2)
		return
	}
	t0 := time.Now()
	time.Sleep(c.cfg.window)
	cpu1, err := proctest.CPUSecondsWithChildren(c.hivePID())
	sum1, n1, err2 := c.tickStats()
	if err != nil || err2 != nil || n1 <= n0 {
		c.fail("cost", "%v %v, %v ticks", err, err2, n1-n0)
		return
	}
	el := time.Since(t0).Seconds()
	c.info("cost", "%s: hive CPU %.2f %% of a core over %.0f s (nvidia-smi children included), mean tick %.1f ms over %d ticks",
		what, 100*(cpu1-cpu0)/el, el, 1000*(sum1-sum0)/float64(n1-n0), n1-n0)
}

func util(s wire.ProcessStats) float64 { return float64(s.GPUUtilPct) }

func median(ss []wire.ProcessStats, f func(wire.ProcessStats) float64) float64 {
	if len(ss) == 0 {
		return -1
	}
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
