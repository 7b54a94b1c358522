package collector

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/shirou/gopsutil/v3/host"
	"github.com/shirou/gopsutil/v3/process"

	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/procfs"
	"github.com/rbee/hive/internal/text"
)

// procState is what the sampler remembers of one process between ticks.
// Identity is (pid, createTime): a reused pid starts from fresh counters.
type procState struct {
	proc       *process.Process
	createTime int64  // ms since epoch
	startTicks uint64 // from the process table; 0 when it was not there
	cpuSec     float64
	ioRead     uint64
	ioWrite    uint64
	ioOK       bool
	at         time.Time // monotonic reading of the last sample
	seen       uint64    // tick number of the last sample
}

// procSample is one process's contribution to its worker for one tick.
// The deltas are what it used since its last sample (since it started, on
// its first): summed into the worker's totals, they never go back when a
// child exits.
type procSample struct {
	cpuPct          float64
	rssBytes        uint64
	readBps, wrtBps float64
	createTime      int64
	cpuDelta        float64
	readDelta       uint64
	writeDelta      uint64
}

// workerTotals are a worker's cumulative counters, kept while it is seen.
type workerTotals struct {
	createTime      int64
	cpu             float64
	ioRead, ioWrite uint64
	seen            uint64
	names           shownNames
}

// shownNames are a worker's strings as found and as shown: bounded and
// made printable once, then again only when what was found changes.
type shownNames struct {
	found [3]string // group, instance, model as the source gave them
	shown [3]string
}

// of returns the shown forms of group, instance and model.
func (n *shownNames) of(group, instance, model string) (string, string, string) {
	if n.found != [3]string{group, instance, model} {
		n.found = [3]string{group, instance, model}
		// Any local user can name a process so the pattern matches it:
		// its strings are bounded and made printable here, for the event,
		// /metrics and every terminal after them.
		n.shown = [3]string{text.Clip(text.Printable(group), wire.MaxGroupBytes),
			text.Clip(text.Printable(instance), wire.MaxInstanceBytes), text.Clip(text.Printable(model), wire.MaxModelBytes)}
	}
	return n.shown[0], n.shown[1], n.shown[2]
}

// sampler turns workers into ProcessStats. It is used from the collector's
// goroutine only.
type sampler struct {
	// table, when set, is the tick's walk of /proc: its stat reading gives
	// each process's identity and CPU time, so neither is read again.
	table   *procTable
	bootMs  int64
	procs   map[int32]*procState
	workers map[int32]*workerTotals // by main pid
	tick    uint64
	maxCPU  float64
	now     func() time.Time
	ioBuf   []byte // reused for /proc/<pid>/io
}

func newSampler() *sampler {
	return &sampler{
		procs:   make(map[int32]*procState),
		workers: make(map[int32]*workerTotals),
		maxCPU:  float64(runtime.NumCPU()) * 100,
		now:     time.Now,
	}
}

// sample measures one worker. ok is false when its main process is gone,
// so the worker is left out of this tick rather than reported with zeros.
func (s *sampler) sample(ctx context.Context, w Worker) (wire.ProcessStats, bool) {
	st, _, ok := s.sampleWithTotals(ctx, w)
	return st, ok
}

// sampleWithTotals is sample plus the worker's cumulative counters.
func (s *sampler) sampleWithTotals(ctx context.Context, w Worker) (wire.ProcessStats, workerCounter, bool) {
	var sum procSample
	var main procSample
	for i, pid := range w.PIDs {
		ps, ok := s.sampleProc(ctx, pid)
		if !ok {
			if i == 0 {
				return wire.ProcessStats{}, workerCounter{}, false
			}
			continue // a child that exited mid-sample
		}
		if i == 0 {
			main = ps
		}
		sum.cpuPct += ps.cpuPct
		sum.rssBytes += ps.rssBytes
		sum.readBps += ps.readBps
		sum.wrtBps += ps.wrtBps
		sum.cpuDelta += ps.cpuDelta
		sum.readDelta += ps.readDelta
		sum.writeDelta += ps.writeDelta
	}
	tot := s.workers[w.PIDs[0]]
	if tot == nil || tot.createTime != main.createTime {
		tot = &workerTotals{createTime: main.createTime}
		s.workers[w.PIDs[0]] = tot
	}
	tot.cpu += sum.cpuDelta
	tot.ioRead += sum.readDelta
	tot.ioWrite += sum.writeDelta
	tot.seen = s.tick
	uptime := s.now().UnixMilli() - main.createTime
	if uptime < 0 {
		uptime = 0
	}
	w.Group, w.Instance, w.Model = tot.names.of(w.Group, w.Instance, w.Model)
	st := wire.ProcessStats{
		PID:        uint32(w.PIDs[0]),
		Group:      w.Group,
		Instance:   w.Instance,
		CPUPct:     wire.Round(min(sum.cpuPct, s.maxCPU), 1),
		RSSMB:      sum.rssBytes / (1 << 20),
		IOReadMBs:  wire.Round(sum.readBps/1e6, 3),
		IOWriteMBs: wire.Round(sum.wrtBps/1e6, 3),
		UptimeS:    uint64(uptime / 1000),
		GPUIndices: []int{},
	}
	if w.Model != "" {
		m := w.Model
		st.Model = &m
	}
	wc := workerCounter{
		pid: st.PID, group: w.Group, instance: w.Instance, model: w.Model,
		cpuSeconds: tot.cpu, residentBytes: sum.rssBytes,
		ioReadBytes: tot.ioRead, ioWriteBytes: tot.ioWrite,
		startTimeSeconds: float64(main.createTime) / 1000,
	}
	return st, wc, true
}

// sampleProc reads one process. On the first sample of a process there is
// no previous reading, so rates are averages since the process started:
// real figures, and the only ones available without waiting a tick.
func (s *sampler) sampleProc(ctx context.Context, pid int32) (procSample, bool) {
	now := s.now()
	st := s.procs[pid]
	if st != nil && st.seen == s.tick {
		return procSample{}, false // listed twice in one tick: count it once
	}
	st, cpuSec, rss, fromTable, ok := s.read(ctx, pid, st)
	if !ok {
		delete(s.procs, pid)
		return procSample{}, false
	}
	// I/O counters need ptrace-read rights on other users' processes; their
	// absence must not drop the CPU and memory figures.
	io, ioErr := s.ioCounters(ctx, st.proc, fromTable)
	out := st.advance(now, cpuSec, rss, io, ioErr)
	st.seen = s.tick
	return out, true
}

// read is pid's CPU time and resident memory: from the tick's process
// table when it has the process (one read of /proc/<pid>/stat for both),
// else through gopsutil. st is pid's state, made anew for a new process
// (a reused pid has another start time). ok is false when the process is
// gone; fromTable says which way it was read.
func (s *sampler) read(ctx context.Context, pid int32, st *procState) (_ *procState, cpuSec float64, rss uint64, fromTable, ok bool) {
	if e := s.entry(pid); e != nil && s.boot(ctx) {
		if st == nil || st.startTicks != e.startTicks {
			st = &procState{proc: &process.Process{Pid: pid}, startTicks: e.startTicks,
				createTime: s.bootMs + int64(e.startTicks)*1000/procfs.ClockTicks}
			s.procs[pid] = st
		}
		return st, e.cpuSec, e.rssPages * pageSize, true, true
	}
	if st == nil || !s.sameProcess(ctx, st) {
		p := &process.Process{Pid: pid}
		ct, err := p.CreateTimeWithContext(ctx)
		if err != nil {
			return nil, 0, 0, false, false
		}
		st = &procState{proc: p, createTime: ct}
		s.procs[pid] = st
	}
	times, err := st.proc.TimesWithContext(ctx)
	if err != nil {
		return nil, 0, 0, false, false
	}
	mem, err := st.proc.MemoryInfoWithContext(ctx)
	if err != nil {
		return nil, 0, 0, false, false
	}
	return st, times.User + times.System, mem.RSS, false, true
}

// advance turns this reading into deltas and rates since the previous one
// (since the process started, on the first), and keeps it for the next.
func (st *procState) advance(now time.Time, cpuSec float64, rss uint64, io *process.IOCountersStat, ioErr error) procSample {
	out := procSample{rssBytes: rss, createTime: st.createTime}
	first := st.at.IsZero()
	if first {
		out.cpuDelta = cpuSec
		if ioErr == nil {
			out.readDelta, out.writeDelta = io.ReadBytes, io.WriteBytes
		}
	} else {
		out.cpuDelta = max(cpuSec-st.cpuSec, 0)
		if ioErr == nil && st.ioOK {
			out.readDelta, out.writeDelta = sub(io.ReadBytes, st.ioRead), sub(io.WriteBytes, st.ioWrite)
		}
	}
	var dt float64
	if first {
		dt = float64(now.UnixMilli()-st.createTime) / 1000
	} else {
		dt = now.Sub(st.at).Seconds()
	}
	if dt > 0.01 {
		prevCPU := st.cpuSec
		if first {
			prevCPU = 0
		}
		if d := cpuSec - prevCPU; d > 0 {
			out.cpuPct = d / dt * 100
		}
		if ioErr == nil {
			switch {
			case first:
				out.readBps = float64(io.ReadBytes) / dt
				out.wrtBps = float64(io.WriteBytes) / dt
			case st.ioOK:
				out.readBps = float64(sub(io.ReadBytes, st.ioRead)) / dt
				out.wrtBps = float64(sub(io.WriteBytes, st.ioWrite)) / dt
			}
		}
	}
	st.cpuSec = cpuSec
	if ioErr == nil {
		st.ioRead, st.ioWrite, st.ioOK = io.ReadBytes, io.WriteBytes, true
	} else {
		st.ioOK = false
	}
	st.at = now
	return out
}

// entry is pid's line of the tick's process table, or nil.
func (s *sampler) entry(pid int32) *procEntry {
	if s.table == nil {
		return nil
	}
	return s.table.procs[pid]
}

// boot reads the boot time once; start times in the table count from it.
func (s *sampler) boot(ctx context.Context) bool {
	if s.bootMs == 0 {
		bt, err := host.BootTimeWithContext(ctx)
		if err != nil || bt == 0 {
			return false
		}
		s.bootMs = int64(bt) * 1000
	}
	return true
}

// sameProcess reports whether st still describes the process at its pid.
func (s *sampler) sameProcess(ctx context.Context, st *procState) bool {
	ct, err := (&process.Process{Pid: st.proc.Pid}).CreateTimeWithContext(ctx)
	return err == nil && ct == st.createTime
}

// endTick forgets processes not sampled in this tick and starts the next.
func (s *sampler) endTick() {
	for pid, st := range s.procs {
		if st.seen != s.tick {
			delete(s.procs, pid)
		}
	}
	for pid, w := range s.workers {
		if w.seen != s.tick {
			delete(s.workers, pid)
		}
	}
	s.tick++
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0 // counters never go back for one process; guard anyway
	}
	return a - b
}

func itoa(pid int32) string { return strconv.Itoa(int(pid)) }

// pageSize converts stat's rss (pages) to bytes.
var pageSize = uint64(os.Getpagesize())

// ioCounters reads /proc/<pid>/io: with the table's kept files when the
// process came from the walk (one pread), else via gopsutil.
func (s *sampler) ioCounters(ctx context.Context, p *process.Process, raw bool) (*process.IOCountersStat, error) {
	if !raw || s.table == nil {
		return p.IOCountersWithContext(ctx)
	}
	b, err := s.table.files.readIO(p.Pid, s.ioBuf[:0])
	if err != nil {
		return nil, err
	}
	s.ioBuf = b
	var out process.IOCountersStat
	if out.ReadBytes, out.WriteBytes, err = procfs.ParseIO(b); err != nil {
		return nil, fmt.Errorf("/proc/%d/io: %w", p.Pid, err)
	}
	return &out, nil
}
