package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rbee/hive/internal/nvsmi"
)

// card is GPU 0 as nvidia-smi reports it: the reference for the checks.
type card struct {
	name, uuid, cc, driver string
	totalMiB               uint64
}

// smi runs nvidia-smi with a 20 s limit; the reference checks parse its
// output here, not with the hive's parsers they check.
func smi(args ...string) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "nvidia-smi", args...).CombinedOutput()
	return out, time.Since(start), err
}

func (c *check) card() (card, error) {
	out, _, err := smi("--query-gpu=index,uuid,name,memory.total,compute_cap,driver_version", "--format=csv,noheader,nounits")
	if err != nil {
		return card{}, fmt.Errorf("%v: %s", err, out)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	f := strings.Split(line, ", ")
	if len(f) != 6 {
		return card{}, fmt.Errorf("unexpected %q", line)
	}
	total, err := strconv.ParseUint(f[3], 10, 64)
	if err != nil {
		return card{}, fmt.Errorf("memory.total %q", f[3])
	}
	return card{uuid: f[1], name: f[2], totalMiB: total, cc: f[4], driver: f[5]}, nil
}

// appMiB is the memory nvidia-smi says pid holds, over every GPU.
func (c *check) appMiB(pid int) (uint64, error) {
	out, _, err := smi("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	var sum uint64
	found := false
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, ", ")
		if len(f) == 2 && f[0] == strconv.Itoa(pid) {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err == nil {
				sum += v
				found = true
			}
		}
	}
	if !found {
		return 0, fmt.Errorf("pid %d not among the compute apps: %q", pid, out)
	}
	return sum, nil
}

// recordings are what -record saves per phase: the hive's own queries
// under the names nvsmi.Replay reads, and the other views of the same
// state that per-process utilisation could come from.
var recordings = []struct {
	file string
	args []string
}{
	{nvsmi.Devices.File, nvsmi.Devices.Args},
	{nvsmi.Apps.File, nvsmi.Apps.Args},
	{nvsmi.Caps.File, nvsmi.Caps.Args},
	{"pmon-um.txt", []string{"pmon", "-c", "1", "-s", "um"}},
	{"pmon-u.txt", []string{"pmon", "-c", "1", "-s", "u"}},
	{"pmon-um-c3.txt", []string{"pmon", "-c", "3", "-s", "um"}},
	{"query-apps-named.csv", []string{"--query-compute-apps=pid,process_name,gpu_uuid,used_memory", "--format=csv"}},
	{"nvidia-smi.txt", nil},
	{"q.txt", []string{"-q"}},
}

func (c *check) recordPhase(phase string) {
	if !c.cfg.record {
		return
	}
	dir := filepath.Join(c.cfg.out, "record", phase)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.info("record", "%v", err)
		return
	}
	tf, err := os.OpenFile(filepath.Join(c.cfg.out, "record", "timings.tsv"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.info("record", "%v", err)
		return
	}
	defer tf.Close()
	for _, r := range recordings {
		out, took, err := smi(r.args...)
		_ = os.WriteFile(filepath.Join(dir, r.file), out, 0o644)
		fmt.Fprintf(tf, "%s\t%s\t%.1f\t%v\n", phase, r.file, float64(took.Microseconds())/1000, err)
	}
	if !c.cfg.fake {
		ref := filepath.Join(filepath.Dir(c.cfg.probe), "nvml_ref.py")
		out, err := exec.Command(c.cfg.python, ref).CombinedOutput()
		if err != nil {
			out = append(out, []byte("\nerror: "+err.Error())...)
		}
		_ = os.WriteFile(filepath.Join(dir, "nvml.json"), out, 0o644)
	}
}

// timeQueries times the hive's per-tick queries and pmon, run back to back.
func (c *check) timeQueries() {
	for _, q := range []struct {
		name string
		n    int
		args []string
	}{
		{"query-gpu", 10, nvsmi.Devices.Args},
		{"query-compute-apps", 10, nvsmi.Apps.Args},
		{"pmon -c 1 -s um", 3, []string{"pmon", "-c", "1", "-s", "um"}},
	} {
		var ds []time.Duration
		for range q.n {
			_, d, err := smi(q.args...)
			if err != nil {
				c.info("latency", "%s: %v", q.name, err)
				break
			}
			ds = append(ds, d)
		}
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		c.info("latency", "nvidia-smi %s: p50 %.1f ms, max %.1f ms over %d runs", q.name, ms(ds[len(ds)/2]), ms(ds[len(ds)-1]), len(ds))
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
