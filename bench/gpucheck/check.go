package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/client"
)

type check struct {
	cfg            config
	checks, failed int
	base           string
	env            []string
	hive           *exec.Cmd
	probes         []*probe
	stop           context.CancelFunc
	ctx            context.Context
	source         string // the hive's gpu_source in /capabilities

	mu       sync.Mutex
	seen     map[uint32][]sample // per worker pid, bounded
	lastEv   []byte
	lastAt   time.Time       // when lastEv came
	lastPIDs map[uint32]bool // the workers in lastEv
}

type sample struct {
	at time.Time
	st wire.ProcessStats
}

func newCheck(cfg config) (*check, error) {
	if cfg.out == "" {
		d, err := os.MkdirTemp("", "gpucheck-")
		if err != nil {
			return nil, err
		}
		cfg.out = d
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return nil, err
	}
	c := &check{cfg: cfg, base: "http://127.0.0.1:" + strconv.Itoa(cfg.port), env: os.Environ(), seen: map[uint32][]sample{}}
	c.ctx, c.stop = context.WithCancel(context.Background())
	if cfg.fake {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(cfg.out, "fake")
		if err := os.MkdirAll(filepath.Join(dir, "state"), 0o755); err != nil {
			return nil, err
		}
		_ = os.Remove(filepath.Join(dir, "nvidia-smi"))
		if err := os.Symlink(self, filepath.Join(dir, "nvidia-smi")); err != nil {
			return nil, err
		}
		c.env = append(c.env, "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"), "GPUCHECK_FAKE_DIR="+filepath.Join(dir, "state"))
		os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
		os.Setenv("GPUCHECK_FAKE_DIR", filepath.Join(dir, "state"))
	}
	fmt.Printf("gpucheck: %s mode, output in %s\n", map[bool]string{true: "fake nvidia-smi", false: "real GPU"}[cfg.fake], cfg.out)
	return c, nil
}

func (c *check) cleanup() {
	c.stop()
	for _, p := range c.probes {
		p.kill()
	}
	c.probes = nil
	if c.hive != nil {
		_ = c.hive.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.hive.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.hive.Process.Kill()
			<-done
		}
		c.hive = nil
	}
}

func (c *check) check(name string, ok bool, format string, args ...any) {
	c.checks++
	status := "PASS"
	if !ok {
		status = "FAIL"
		c.failed++
	}
	fmt.Printf("%s %-16s %s\n", status, name, fmt.Sprintf(format, args...))
}

func (c *check) fail(name, format string, args ...any) { c.check(name, false, format, args...) }

func (c *check) info(name, format string, args ...any) {
	fmt.Printf("INFO %-16s %s\n", name, fmt.Sprintf(format, args...))
}

func (c *check) save(name string, b []byte) {
	_ = os.WriteFile(filepath.Join(c.cfg.out, name), b, 0o644)
}

func (c *check) startHive() error {
	log, err := os.Create(filepath.Join(c.cfg.out, "hive.log"))
	if err != nil {
		return err
	}
	c.hive = exec.Command(c.cfg.hive, "--queen-url", "", "--listen", "127.0.0.1:"+strconv.Itoa(c.cfg.port),
		"--nats-listen", "", "--hive-id", "gpucheck", "--cgroup-root", "", "--gpu-source", c.cfg.source,
		"--worker-match", "cmdline:llm-worker --model gpu-probe", "--state-dir", "-")
	// Port 0 (the test's) is bound by the hive and read back from its
	// ready file, never picked by listening and closing.
	ready := filepath.Join(c.cfg.out, "ready.json")
	_ = os.Remove(ready)
	c.hive.Env, c.hive.Stdout, c.hive.Stderr = append(c.env, "HIVE_READY_FILE="+ready), log, log
	if err := c.hive.Start(); err != nil {
		return fmt.Errorf("start %s: %w", c.cfg.hive, err)
	}
	if !c.waitFor(20*time.Second, func() bool {
		b, err := os.ReadFile(ready)
		var rf struct{ HTTP string }
		if err != nil || json.Unmarshal(b, &rf) != nil || rf.HTTP == "" {
			return false
		}
		c.base = rf.HTTP
		return true
	}) {
		return errors.New("no ready file in 20 s; see hive.log")
	}
	if !c.waitFor(20*time.Second, func() bool { _, err := c.get("/health"); return err == nil }) {
		return errors.New("no /health answer in 20 s; see hive.log")
	}
	return nil
}

func (c *check) hivePID() int { return c.hive.Process.Pid }

func (c *check) get(path string) ([]byte, error) {
	resp, err := http.Get(c.base + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return b, err
}

// tickStats reads the collector's tick histogram's sum and count.
func (c *check) tickStats() (sum float64, n uint64, err error) {
	b, err := c.get("/metrics")
	if err != nil {
		return 0, 0, err
	}
	var gotSum, gotN bool
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		switch {
		case !ok:
		case strings.HasPrefix(name, "hive_collector_tick_duration_seconds_sum"):
			sum, err = strconv.ParseFloat(val, 64)
			gotSum = err == nil
		case strings.HasPrefix(name, "hive_collector_tick_duration_seconds_count"):
			n, err = strconv.ParseUint(val, 10, 64)
			gotN = err == nil
		}
	}
	if !gotSum || !gotN {
		return 0, 0, errors.New("no hive_collector_tick_duration_seconds in /metrics")
	}
	return sum, n, nil
}

// follow keeps the last 60 samples of every worker from the SSE stream.
func (c *check) follow() {
	s := &client.Stream{URL: c.base, MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second}
	_ = s.Run(c.ctx, func(e client.Event) {
		now := time.Now()
		raw, _ := json.Marshal(e.Telemetry)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.lastEv, c.lastAt, c.lastPIDs = raw, now, map[uint32]bool{}
		for _, w := range e.Telemetry.Workers {
			c.lastPIDs[w.PID] = true
			h := append(c.seen[w.PID], sample{now, w})
			if len(h) > 60 {
				h = h[len(h)-60:]
			}
			c.seen[w.PID] = h
		}
	})
}

func (c *check) saveLastEvent() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.save("last-event.json", c.lastEv)
}

// absentSince reports whether an event that came after t lacks pid.
func (c *check) absentSince(pid int, t time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastAt.After(t) && !c.lastPIDs[uint32(pid)]
}

func (c *check) last(pid int) (wire.ProcessStats, bool) {
	return c.lastSince(pid, time.Time{})
}

func (c *check) lastSince(pid int, t time.Time) (wire.ProcessStats, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.seen[uint32(pid)]
	if len(h) == 0 || h[len(h)-1].at.Before(t) {
		return wire.ProcessStats{}, false
	}
	return h[len(h)-1].st, true
}

// samples returns the worker's events over the next d.
func (c *check) samples(p *probe, d time.Duration) []wire.ProcessStats {
	return c.samplesAll([]*probe{p}, d)[p.pid]
}

// samplesAll returns each worker's events over the next d, waiting up to
// 30 s longer for at least 3 of each on a machine too busy to tick on time.
func (c *check) samplesAll(ps []*probe, d time.Duration) map[int][]wire.ProcessStats {
	from := time.Now()
	time.Sleep(d)
	out := map[int][]wire.ProcessStats{}
	c.waitFor(30*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		clear(out)
		enough := true
		for _, p := range ps {
			for _, s := range c.seen[uint32(p.pid)] {
				if !s.at.Before(from) {
					out[p.pid] = append(out[p.pid], s.st)
				}
			}
			enough = enough && len(out[p.pid]) >= 3
		}
		return enough
	})
	return out
}

// settle lets the GPU's utilisation, averaged by the driver over its last
// sample period, and the hive's next tick catch up with a change.
func (c *check) settle() { time.Sleep(3 * time.Second) }

func (c *check) waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitWorker waits until the stream shows p holding GPU memory.
func (c *check) waitWorker(p *probe, limit time.Duration) bool {
	var ev wire.ProcessStats
	ok := c.waitFor(limit, func() bool {
		var seen bool
		ev, seen = c.last(p.pid)
		return seen && ev.VRAMMB > 0
	})
	model := ""
	if ev.Model != nil {
		model = *ev.Model
	}
	c.check("stream "+p.name, ok && model == "gpu-probe", "worker %d in the stream with vram_mb %d, model %q", p.pid, ev.VRAMMB, model)
	return ok
}
