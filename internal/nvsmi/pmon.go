package nvsmi

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rbee/hive/internal/text"
)

// Pmon asks for one sample of per-process utilisation and framebuffer
// memory. The driver takes the sample from NVML's process utilisation
// records, so the figures are per process, not per device. On the H200
// with driver 580 it answered in 50-75 ms (docs/BENCHMARKS.md).
var Pmon = Query{"pmon-um.txt", []string{"pmon", "-c", "1", "-s", "um"}}

// ProcUtil is one process on one GPU as Pmon reports it.
type ProcUtil struct {
	GPUIndex int
	PID      int32
	// SMPct is the share of the sample period in which the process ran
	// kernels, 0-100; -1 when the driver had no sample of it (a process
	// that holds memory but ran nothing).
	SMPct float64
	// FBMiB is the memory the process holds on that GPU; ok is false
	// when the column is missing or "-".
	FBMiB uint64
	FBOK  bool
}

// maxPmonLines bounds what one Pmon output may hold: a GPU host runs
// tens of processes per GPU, not thousands.
const maxPmonLines = 4096

// pmonHeader takes the column names from pmon's first header line; the
// second one names their units.
func pmonHeader(col map[string]int, names []string) {
	if _, ok := col["gpu"]; ok {
		return
	}
	for i, name := range names {
		if _, dup := col[name]; !dup {
			col[name] = i
		}
	}
}

// ParsePmon parses the output of Pmon. Columns are found by the header
// ("# gpu pid type sm mem ... fb ... command"), so a driver that adds or
// moves columns still parses; a line of dashes is a GPU with no process;
// a malformed line drops that process only. Output without a header
// naming gpu, pid and sm is an error: it is not pmon's.
func ParsePmon(r io.Reader) ([]ProcUtil, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	col := map[string]int{}
	var out []ProcUtil
	seen := map[[2]int32]int{} // (gpu, pid) -> index in out
	for n := 0; sc.Scan(); n++ {
		if n >= maxPmonLines {
			return nil, fmt.Errorf("pmon: more than %d lines", maxPmonLines)
		}
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "#" {
			pmonHeader(col, f[1:])
			continue
		}
		gi, ok1 := col["gpu"]
		pi, ok2 := col["pid"]
		si, ok3 := col["sm"]
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("pmon: data before a header naming gpu, pid and sm: %q", text.Truncate(sc.Text(), 80))
		}
		if len(f) <= max(gi, pi, si) {
			continue
		}
		idx, err := strconv.Atoi(f[gi])
		pid, err2 := strconv.ParseInt(f[pi], 10, 32)
		if err != nil || err2 != nil || idx < 0 || idx > 1024 || pid <= 0 {
			continue // "-": a GPU without processes, or a bad line
		}
		p := ProcUtil{GPUIndex: idx, PID: int32(pid), SMPct: -1}
		if v, err := strconv.ParseFloat(f[si], 64); err == nil && v >= 0 && v <= 100 {
			p.SMPct = v
		}
		if fi, ok := col["fb"]; ok && fi < len(f) {
			p.FBMiB, p.FBOK = parseMiB(f[fi])
		}
		// Several samples (-c N) list a process again: the last one counts.
		if i, ok := seen[[2]int32{int32(idx), p.PID}]; ok {
			out[i] = p
			continue
		}
		seen[[2]int32{int32(idx), p.PID}] = len(out)
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("pmon: %w", err)
	}
	if _, ok := col["sm"]; !ok {
		return nil, fmt.Errorf("pmon: no header naming an sm column")
	}
	return out, nil
}
