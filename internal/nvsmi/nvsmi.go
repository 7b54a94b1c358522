// Package nvsmi is the hive's one way to ask nvidia-smi: the queries, a
// runner that execs the binary, a replay of recorded output for tests and
// GPU-less hosts, and the parsers. The collector and the capabilities
// module both use it, so "no GPU" means the same to both: ErrNoGPU.
package nvsmi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNoGPU means the host has no readable NVIDIA GPU: no nvidia-smi, no
// recorded output, or no device in it.
var ErrNoGPU = errors.New("no GPU")

// Query is one nvidia-smi query. File names its recorded output in a
// replay directory, so a fixture recorded with exactly Args replays
// through the same parser.
type Query struct {
	File string
	Args []string
}

// The queries the hive runs.
var (
	// Devices: per GPU, for telemetry (ParseDevices).
	// (name and memory.free came later: a recording of five fields parses
	// too.)
	Devices = Query{"query-gpu.csv", []string{"--query-gpu=index,uuid,utilization.gpu,memory.total,memory.used,name,memory.free", "--format=csv,noheader,nounits"}}
	// Q is the full report, for the driver and CUDA versions (ParseVersions):
	// no query field has the CUDA version.
	Q = Query{"q.txt", []string{"-q"}}
	// Apps: per compute process (ParseApps).
	Apps = Query{"query-compute-apps.csv", []string{"--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits"}}
	// Caps: per GPU, for capabilities (ParseCaps).
	Caps = Query{"query-gpu-caps.csv", []string{"--query-gpu=index,name,memory.total,compute_cap", "--format=csv,noheader,nounits"}}
)

// Runner runs queries. Run must honour ctx: a wedged GPU must not stall
// its caller.
type Runner interface {
	Run(ctx context.Context, q Query) ([]byte, error)
	Name() string
}

// Exec runs the nvidia-smi binary.
type Exec struct {
	Path string // "" looks nvidia-smi up in PATH
}

// Name implements Runner.
func (Exec) Name() string { return "smi" }

// Run implements Runner. A missing binary is ErrNoGPU.
func (e Exec) Run(ctx context.Context, q Query) ([]byte, error) {
	path := e.Path
	if path == "" {
		p, err := exec.LookPath("nvidia-smi")
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoGPU, err)
		}
		path = p
	}
	cmd := exec.CommandContext(ctx, path, q.Args...)
	stdout, stderr := &capped{max: MaxOutput}, &capped{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	if err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) || errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %v", ErrNoGPU, err)
		}
		return nil, fmt.Errorf("nvidia-smi %s: %w: %s", q.Args[0], err, bytes.TrimSpace(stderr.Bytes()))
	}
	if stdout.over {
		return nil, fmt.Errorf("nvidia-smi %s: output over %d bytes", q.Args[0], MaxOutput)
	}
	return stdout.Bytes(), nil
}

// MaxOutput bounds what one nvidia-smi run may print: a host with 16 GPUs
// and hundreds of processes prints tens of KiB.
const MaxOutput = 1 << 20

// capped keeps the first max bytes written to it and notes the rest, so a
// runaway nvidia-smi cannot grow the hive's memory. The buffer is not
// embedded: its ReadFrom would let io.Copy bypass Write.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Bytes() []byte { return c.buf.Bytes() }

// Write takes all of p, so the child never blocks or fails on a write.
func (c *capped) Write(p []byte) (int, error) {
	n := len(p)
	if room := c.max - c.buf.Len(); n > room {
		c.over = true
		p = p[:max(room, 0)]
	}
	c.buf.Write(p)
	return n, nil
}

// Replay reads recorded output from Dir/<Query.File> on every Run, so a
// test can rewrite the files between calls. A missing file is ErrNoGPU.
type Replay struct {
	Dir string
}

// Name implements Runner.
func (r Replay) Name() string { return "replay:" + r.Dir }

// Run implements Runner.
func (r Replay) Run(_ context.Context, q Query) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(r.Dir, q.File))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: no %s in %s", ErrNoGPU, q.File, r.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return b, nil
}

// None is a host without GPUs, or GPU reading turned off.
type None struct{}

// Name implements Runner.
func (None) Name() string { return "none" }

// Run implements Runner.
func (None) Run(context.Context, Query) ([]byte, error) { return nil, ErrNoGPU }

// New builds a runner from its flag form: "auto" or "smi" for nvidia-smi,
// "none", or "replay:<dir>".
func New(spec string) (Runner, error) {
	switch {
	case spec == "" || spec == "auto" || spec == "smi" || spec == "nvidia-smi":
		return Exec{}, nil
	case spec == "none":
		return None{}, nil
	case strings.HasPrefix(spec, "replay:") && len(spec) > len("replay:"):
		return Replay{Dir: strings.TrimPrefix(spec, "replay:")}, nil
	}
	return nil, fmt.Errorf("unknown GPU source %q (want auto, smi, none or replay:<dir>)", spec)
}
