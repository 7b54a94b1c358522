package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// probe is one GPU worker: gpu_probe.py, or the fake one.
type probe struct {
	name, control string
	pid           int
	cmd           *exec.Cmd
	done          chan error
	ready         struct {
		HeldMiB          int    `json:"held_mib"`
		TorchReservedMiB int    `json:"torch_reserved_mib"`
		Device           string `json:"device"`
	}
}

// startProbe starts a worker holding mib MiB in the given mode and waits
// for its ready line (PyTorch's start and CUDA's init take seconds).
func (c *check) startProbe(name string, mib int, mode string) (*probe, error) {
	p := &probe{name: name, control: filepath.Join(c.cfg.out, "control-"+name), done: make(chan error, 1)}
	p.set(mode)
	args := []string{"llm-worker", "--model", "gpu-probe", "--port", strconv.Itoa(9400 + len(c.probes))}
	if c.cfg.fake {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		p.cmd = exec.Command(self, append([]string{"fake-probe"}, args...)...)
	} else {
		p.cmd = exec.Command(c.cfg.python, append([]string{c.cfg.probe}, args...)...)
	}
	p.cmd.Env = append(c.env, "GPU_PROBE_CONTROL="+p.control, "GPU_PROBE_MIB="+strconv.Itoa(mib), "PYTHONUNBUFFERED=1")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log, err := os.Create(filepath.Join(c.cfg.out, "worker-"+name+".log"))
	if err != nil {
		return nil, err
	}
	p.cmd.Stderr = log
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", name, err)
	}
	c.probes = append(c.probes, p)
	p.pid = p.cmd.Process.Pid
	lines := make(chan []byte, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- append([]byte(nil), sc.Bytes()...):
			default:
			}
		}
		p.done <- p.cmd.Wait()
	}()
	select {
	case l := <-lines:
		if err := json.Unmarshal(l, &p.ready); err != nil {
			return nil, fmt.Errorf("worker %s: ready line %q: %w", name, l, err)
		}
		return p, nil
	case err := <-p.done:
		return nil, fmt.Errorf("worker %s exited before it was ready: %v; see worker-%s.log", name, err, name)
	case <-time.After(3 * time.Minute):
		return nil, fmt.Errorf("worker %s not ready in 3 min", name)
	}
}

func (p *probe) set(mode string) {
	tmp := p.control + ".tmp"
	if err := os.WriteFile(tmp, []byte(mode+"\n"), 0o644); err == nil {
		_ = os.Rename(tmp, p.control)
	}
}

func (p *probe) wait(limit time.Duration) error {
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(limit):
		return errors.New("still running")
	}
}

func (p *probe) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
}
