package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The fake card: what the real one reported (docs/BENCHMARKS.md, GPU).
const (
	fakeName     = "NVIDIA H200"
	fakeUUID     = "GPU-00000000-fake-0000-0000-000000000000"
	fakeTotalMiB = 143771
	fakeCC       = "9.0"
	fakeDriver   = "580.159.04"
	fakeCUDA     = "13.0"
	// fakeContextMiB is what a PyTorch process held beyond its own
	// allocations (CUDA context and PyTorch's pool) on the real card.
	fakeContextMiB = 804
	// fakeReservedMiB is the driver's own memory on the real card (NVML
	// v2's reserved; not in nvidia-smi's memory.used).
	fakeReservedMiB = 615
)

// fakeState is what a fake worker tells the fake nvidia-smi.
type fakeState struct {
	PID     int    `json:"pid"`
	MiB     int    `json:"mib"`
	Control string `json:"control"`
}

type fakeProc struct {
	pid, usedMiB int
	sm           int // -1: no kernel ran in the sample period
}

// fakeProcs reads the live fake workers and what their control files say.
func fakeProcs() []fakeProc {
	dir := os.Getenv("GPUCHECK_FAKE_DIR")
	ents, _ := os.ReadDir(dir)
	var out []fakeProc
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		var s fakeState
		if err != nil || json.Unmarshal(b, &s) != nil || syscall.Kill(s.PID, 0) != nil {
			continue
		}
		p := fakeProc{pid: s.PID, usedMiB: s.MiB + fakeContextMiB, sm: 97}
		mode, _ := os.ReadFile(s.Control)
		switch f := strings.Fields(string(mode)); {
		case len(f) > 0 && f[0] == "idle":
			p.sm = -1
		case len(f) > 1 && f[0] == "duty":
			// On the H200, 25 % duty read as 12-14 % SM beside a busy worker.
			d, _ := strconv.Atoi(f[1])
			p.sm = d / 2
		}
		out = append(out, p)
	}
	return out
}

// fakeSMI answers the nvidia-smi command lines the hive and gpucheck use.
func fakeSMI(args []string) int {
	procs := fakeProcs()
	util, used := 0, 0
	for _, p := range procs {
		util += max(p.sm, 0)
		used += p.usedMiB
	}
	util = min(util, 100)
	switch {
	case len(args) > 0 && strings.HasPrefix(args[0], "--query-gpu="):
		vals := map[string]string{"index": "0", "uuid": fakeUUID, "name": fakeName, "memory.total": strconv.Itoa(fakeTotalMiB),
			"memory.used": strconv.Itoa(used), "memory.free": strconv.Itoa(fakeTotalMiB - used - fakeReservedMiB), "utilization.gpu": strconv.Itoa(util), "compute_cap": fakeCC, "driver_version": fakeDriver}
		return fakeCSV(args, "--query-gpu=", []map[string]string{vals})
	case len(args) > 0 && strings.HasPrefix(args[0], "--query-compute-apps="):
		var rows []map[string]string
		for _, p := range procs {
			rows = append(rows, map[string]string{"pid": strconv.Itoa(p.pid), "gpu_uuid": fakeUUID, "used_memory": strconv.Itoa(p.usedMiB), "process_name": "python3"})
		}
		return fakeCSV(args, "--query-compute-apps=", rows)
	case len(args) > 0 && args[0] == "pmon":
		fakePmon(args, procs)
		return 0
	case len(args) > 0 && args[0] == "-q":
		// The lines of the real report the hive reads (nvsmi.ParseVersions).
		fmt.Printf("\n==============NVSMI LOG==============\n\nTimestamp                                 : %s\nDriver Version                            : %s\nCUDA Version                              : %s\n\nAttached GPUs                             : 1\n",
			time.Now().Format(time.ANSIC), fakeDriver, fakeCUDA)
		return 0
	case len(args) == 0:
		fmt.Printf("fake nvidia-smi (gpucheck -fake): %s, %d MiB, %d %% busy, %d compute processes\n", fakeName, fakeTotalMiB, util, len(procs))
		return 0
	}
	fmt.Fprintf(os.Stderr, "fake nvidia-smi: unsupported arguments %q\n", args)
	return 2
}

func fakeCSV(args []string, prefix string, rows []map[string]string) int {
	fields := strings.Split(strings.TrimPrefix(args[0], prefix), ",")
	for _, f := range fields {
		if _, ok := map[string]bool{"index": true, "uuid": true, "name": true, "memory.total": true, "memory.used": true, "memory.free": true, "utilization.gpu": true,
			"compute_cap": true, "driver_version": true, "pid": true, "gpu_uuid": true, "used_memory": true, "process_name": true}[f]; !ok {
			fmt.Fprintf(os.Stderr, "Field \"%s\" is not a valid field to query.\n", f)
			return 2
		}
	}
	format := ""
	if len(args) > 1 {
		format = strings.TrimPrefix(args[1], "--format=")
	}
	if !strings.Contains(format, "noheader") {
		fmt.Println(strings.Join(fields, ", "))
	}
	for _, r := range rows {
		vals := make([]string, len(fields))
		for i, f := range fields {
			vals[i] = r[f]
		}
		fmt.Println(strings.Join(vals, ", "))
	}
	return 0
}

// fakePmon prints what `nvidia-smi pmon -c 1 -s um` printed on the real
// card: a header, then a line per process (or one of dashes for none).
func fakePmon(_ []string, procs []fakeProc) {
	fmt.Println("# gpu         pid   type     sm    mem    enc    dec    jpg    ofa     fb   ccpm    command ")
	fmt.Println("# Idx           #    C/G      %      %      %      %      %      %     MB     MB    name ")
	if len(procs) == 0 {
		fmt.Println("    0          -     -      -      -      -      -      -      -      -      -    -              ")
		return
	}
	for _, p := range procs {
		sm, mem := "-", "-"
		// The H200's driver often had no sample of the lighter of two
		// processes in a second (pmon "-"): so has the fake, every other.
		lighter := len(procs) > 1 && p.sm < 50 && time.Now().Second()%2 == 0
		if p.sm >= 0 && !lighter {
			sm, mem = strconv.Itoa(p.sm), strconv.Itoa(p.sm/3)
		}
		fmt.Printf("    0 %10d     C %6s %6s      -      -      -      - %6d      0    python3        \n", p.pid, sm, mem, p.usedMiB)
	}
}

// fakeProbe is a worker for the fake card: it registers with the fake
// nvidia-smi and follows its control file like gpu_probe.py.
func fakeProbe() int {
	mib, _ := strconv.Atoi(os.Getenv("GPU_PROBE_MIB"))
	ctl := os.Getenv("GPU_PROBE_CONTROL")
	state := filepath.Join(os.Getenv("GPUCHECK_FAKE_DIR"), strconv.Itoa(os.Getpid())+".json")
	b, _ := json.Marshal(fakeState{PID: os.Getpid(), MiB: mib, Control: ctl})
	if err := os.WriteFile(state, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.Remove(state)
	fmt.Printf(`{"ready":true,"pid":%d,"held_mib":%d,"torch_reserved_mib":%d,"device":%q}`+"\n", os.Getpid(), mib, mib, fakeName)
	for {
		mode, _ := os.ReadFile(ctl)
		if strings.TrimSpace(string(mode)) == "exit" {
			return 0
		}
		time.Sleep(50 * time.Millisecond)
	}
}
