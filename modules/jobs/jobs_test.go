package jobs

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/workerproc"
)

func TestSpawnListGetDeleteWorker(t *testing.T) {
	h := start(t, Config{})
	started, _ := h.nc.SubscribeSync(wire.SubjectWorkersStarted)
	stopped, _ := h.nc.SubscribeSync(wire.SubjectWorkersStopped)
	_ = h.nc.Flush()

	id, e := h.create(t, `{"operation":"worker_spawn","hive_id":"h1","model":"tinyllama","worker":"cpu","device":0,"extra":"ignored"}`)
	if e.Error != "" {
		t.Fatal(e.Error)
	}
	evs := h.events(t, id, 30*time.Second)
	if endOf(evs) != wire.EndDone {
		t.Fatalf("spawn ended %q:\n%s", endOf(evs), allText(evs))
	}
	msg, err := started.NextMsg(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var w wire.WorkerEvent
	_ = json.Unmarshal(msg.Data, &w)
	port, _ := strconv.Atoi(w.Instance)
	if w.PID <= 0 || w.Group != "llm" || w.Model != "tinyllama" || port < 9000 || port > 9999 {
		t.Fatalf("announcement %+v", w)
	}
	want := fmt.Sprintf("spawned (PID: %d, port: %d)", w.PID, port)
	if !strings.Contains(allText(evs), want) || !strings.Contains(evs[0].Text, "Executing operation: worker_spawn") {
		t.Fatalf("narration lacks %q:\n%s", want, allText(evs))
	}

	id, _ = h.create(t, `{"operation":"worker_process_list","hive_id":"h1"}`)
	evs = h.events(t, id, 10*time.Second)
	if endOf(evs) != wire.EndDone || !strings.Contains(allText(evs), fmt.Sprintf(`"pid":%d,"port":"%d","model":"tinyllama","spawned_by_hive":true`, w.PID, port)) {
		t.Fatalf("list:\n%s", allText(evs))
	}
	id, _ = h.create(t, fmt.Sprintf(`{"operation":"worker_process_get","hive_id":"h1","pid":%d}`, w.PID))
	if evs = h.events(t, id, 10*time.Second); endOf(evs) != wire.EndDone || !strings.Contains(allText(evs), `"model":"tinyllama"`) {
		t.Fatalf("get:\n%s", allText(evs))
	}

	id, _ = h.create(t, fmt.Sprintf(`{"operation":"worker_process_delete","hive_id":"h1","pid":%d}`, w.PID))
	if evs = h.events(t, id, 10*time.Second); endOf(evs) != wire.EndDone {
		t.Fatalf("delete:\n%s", allText(evs))
	}
	if _, err := stopped.NextMsg(2 * time.Second); err != nil {
		t.Fatal("no hive.workers.stopped")
	}
	if err := syscall.Kill(w.PID, 0); err == nil {
		t.Fatalf("worker %d still exists after delete (zombie or alive)", w.PID)
	}
	if h.m.procs.count() != 0 {
		t.Fatal("spawned worker still registered")
	}
}

func TestSpawnFailures(t *testing.T) {
	// A worker that never answers /health, and one that exits at once.
	write := func(name, script string) {
		if err := os.WriteFile(filepath.Join(workerDir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("llm-worker-rbee-metal", "#!/bin/sh\nexec sleep 60\n")
	write("llm-worker-rbee-cuda", "#!/bin/sh\necho no CUDA here >&2\nexit 3\n")
	t.Cleanup(func() {
		os.Remove(filepath.Join(workerDir, "llm-worker-rbee-metal"))
		os.Remove(filepath.Join(workerDir, "llm-worker-rbee-cuda"))
	})

	t.Run("missing binary", func(t *testing.T) {
		h := start(t, Config{WorkerDir: t.TempDir()})
		id, _ := h.create(t, `{"operation":"worker_spawn","hive_id":"h1","model":"m","worker":"cpu","device":0}`)
		evs := h.events(t, id, 10*time.Second)
		if e := endOf(evs); !strings.HasPrefix(e, "[ERROR] worker binary ") || !strings.Contains(e, "llm-worker-rbee-cpu not found") {
			t.Fatalf("end %q", e)
		}
	})
	t.Run("exits before healthy", func(t *testing.T) {
		h := start(t, Config{})
		id, _ := h.create(t, `{"operation":"worker_spawn","hive_id":"h1","model":"m","worker":"cuda","device":1}`)
		evs := h.events(t, id, 10*time.Second)
		if e := endOf(evs); !strings.HasPrefix(e, "[ERROR] ") || !strings.Contains(e, "did not become healthy: it exited") {
			t.Fatalf("end %q", e)
		}
	})
	t.Run("health timeout", func(t *testing.T) {
		h := start(t, Config{HealthTimeout: 300 * time.Millisecond})
		id, _ := h.create(t, `{"operation":"worker_spawn","hive_id":"h1","model":"m","worker":"metal","device":0}`)
		evs := h.events(t, id, 10*time.Second)
		if e := endOf(evs); !strings.Contains(e, "no healthy /health within 300ms") {
			t.Fatalf("end %q", e)
		}
		if h.m.procs.count() != 0 {
			t.Fatal("unhealthy worker left running")
		}
	})
	t.Run("cancel while waiting for health", func(t *testing.T) {
		h := start(t, Config{})
		id, _ := h.create(t, `{"operation":"worker_spawn","hive_id":"h1","model":"m","worker":"metal","device":0}`)
		bustest.WaitFor(t, 5*time.Second, func() error {
			if h.m.procs.count() != 1 {
				return fmt.Errorf("not spawned yet")
			}
			return nil
		})
		cancelJob(t, h, id, "")
		evs := h.events(t, id, 10*time.Second)
		if endOf(evs) != wire.EndCancelled || !strings.Contains(allText(evs), "Spawn cancelled; stopped") {
			t.Fatalf("cancelled spawn:\n%s", allText(evs))
		}
		if h.m.procs.count() != 0 {
			t.Fatal("cancelled spawn left its worker running")
		}
	})
}

func cancelJob(t *testing.T, h *harness, id string, wantCode string) {
	t.Helper()
	ref, _ := json.Marshal(wire.JobRef{JobID: id})
	msg, err := h.nc.Request(wire.SubjectJobsCancel, ref, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if wantCode == "" {
		if string(msg.Data) != `{"job_id":"`+id+`","status":"cancelled"}` {
			t.Fatalf("cancel reply %s", msg.Data)
		}
		return
	}
	var e wire.ErrorReply
	if json.Unmarshal(msg.Data, &e); e.Code != wantCode {
		t.Fatalf("cancel reply %s, want code %s", msg.Data, wantCode)
	}
}

// capsResponder and ticker stand in for the capabilities module and the
// collector, which hive_check asks over the bus.
func capsResponder(t *testing.T, h *harness) {
	_, err := h.nc.Subscribe(wire.SubjectCapabilitiesGet, func(m *nats.Msg) {
		_ = m.Respond([]byte(`{"devices":[{"id":"CPU-0","name":"CPU (2 cores)","device_type":"cpu","vram_gb":23,"compute_capability":null}]}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = h.nc.Flush()
}

func ticker(t *testing.T, h *harness) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				b, _ := json.Marshal(wire.TelemetryEvent{Type: "telemetry", HiveID: "h1", Timestamp: wire.SSETimestamp(time.Now()), Workers: []wire.ProcessStats{}})
				m := &nats.Msg{Subject: wire.SubjectTelemetry, Data: b, Header: nats.Header{}}
				m.Header.Set(wire.HeaderHiveID, "h1")
				_ = h.nc.PublishMsg(m)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

func TestHiveCheck(t *testing.T) {
	h := start(t, Config{})
	capsResponder(t, h)
	ticker(t, h)
	id, _ := h.create(t, `{"operation":"hive_check"}`)
	evs := h.events(t, id, 20*time.Second)
	out := allText(evs)
	for _, want := range []string{"bus round trip", "collector tick", "1 device(s): CPU (2 cores)", "worker dir", "model dir", "All checks passed"} {
		if !strings.Contains(out, want) {
			t.Errorf("hive_check narration lacks %q:\n%s", want, out)
		}
	}
	if endOf(evs) != wire.EndDone {
		t.Fatalf("end %q", endOf(evs))
	}
	// Two streams of one job see the same events.
	if again := h.events(t, id, time.Second); fmt.Sprint(again) != fmt.Sprint(evs) {
		t.Fatal("a second stream of the job differs")
	}
}

func TestHiveCheckFailsWithoutCollector(t *testing.T) {
	h := start(t, Config{})
	capsResponder(t, h)
	id, _ := h.create(t, `{"operation":"hive_check"}`)
	evs := h.events(t, id, 20*time.Second)
	// Bus, tick, capabilities, and the worker, model, log and state
	// directories' free space: the tick alone fails.
	if e := endOf(evs); e != "[ERROR] hive check: 1 of 7 checks failed" || !strings.Contains(allText(evs), "❌ no collector tick") ||
		!strings.Contains(allText(evs), "worker log dir") || !strings.Contains(allText(evs), "state dir") {
		t.Fatalf("end %q:\n%s", e, allText(evs))
	}
}

func TestCancelLongHiveCheck(t *testing.T) {
	h := start(t, Config{CheckPause: time.Hour})
	id, _ := h.create(t, `{"operation":"hive_check"}`)
	cancelJob(t, h, id, "")
	evs := h.events(t, id, 5*time.Second)
	if endOf(evs) != wire.EndCancelled {
		t.Fatalf("end %q", endOf(evs))
	}
	cancelJob(t, h, id, wire.CodeNotFound) // finished: cannot be cancelled again
	cancelJob(t, h, "job-00000000-0000-4000-8000-000000000000", wire.CodeNotFound)
}

func TestRejectedAtSubmit(t *testing.T) {
	h := start(t, Config{})
	cases := map[string]string{
		`{"operation":"infer","hive_id":"h","model":"m","prompt":"p","max_tokens":1,"temperature":0}`: `"infer" belongs to the Queen`,
		`{"operation":"status"}`:                                       `"status" belongs to the Queen`,
		`{"operation":"rhai_script_list"}`:                             `belongs to the Queen`,
		`{"operation":"queen_check"}`:                                  `belongs to the Queen`,
		`{"operation":"fly"}`:                                          `unknown operation "fly"`,
		`{"operation":"worker_install","hive_id":"h","worker_id":"w"}`: `not supported by this hive`,
		`{"operation":"worker_spawn","hive_id":"h","model":"m","worker":"tpu","device":0}`:  `unsupported worker type "tpu"`,
		`{"operation":"worker_spawn","hive_id":"h","model":"m","worker":"cpu"}`:             `missing field "device"`,
		`{"operation":"worker_spawn","hive_id":"h","model":"m","worker":"cpu","device":-1}`: `field "device": want a non-negative integer`,
		`{"operation":"worker_spawn","hive_id":"h","model":7,"worker":"cpu","device":0}`:    `field "model": want a string`,
		`{"operation":"worker_process_get","hive_id":"h","pid":"12"}`:                       `field "pid"`,
		`{"operation":"worker_process_delete","hive_id":"h","pid":0}`:                       `pid 0 out of range`,
		`{"operation":"model_get","hive_id":"h"}`:                                           `missing field "id"`,
		`{"operation":null}`: `missing field "operation"`,
		`[1,2]`:              `must be a JSON object`,
		`{"operation":5}`:    `field "operation"`,
	}
	for body, want := range cases {
		id, e := h.create(t, body)
		if id != "" || e.Code != wire.CodeInvalid || !strings.Contains(e.Error, want) {
			t.Errorf("%s: id %q reply %+v, want 400 containing %q", body, id, e, want)
		}
	}
	// Bad references on cancel and replay are unknown jobs, never
	// subjects; a body that is not JSON is an invalid request.
	for ref, code := range map[string]string{`{"job_id":"job-x.>"}`: wire.CodeNotFound, `{}`: wire.CodeNotFound, `nope`: wire.CodeInvalid} {
		for _, subj := range []string{wire.SubjectJobsReplay, wire.SubjectJobsCancel} {
			msg, _ := h.nc.Request(subj, []byte(ref), time.Second)
			var e wire.ErrorReply
			if json.Unmarshal(msg.Data, &e); e.Code != code {
				t.Errorf("%s %s: %s, want code %s", subj, ref, msg.Data, code)
			}
		}
	}
}

func TestMaxJobsAndRetention(t *testing.T) {
	h := start(t, Config{MaxJobs: 1, CheckPause: time.Hour, Retention: 100 * time.Millisecond})
	first, _ := h.create(t, `{"operation":"hive_check"}`)
	if _, e := h.create(t, `{"operation":"model_list","hive_id":"h"}`); e.Code != wire.CodeBusy || e.RetryAfter != 1 {
		t.Fatalf("second job with max-jobs 1: %+v", e)
	}
	cancelJob(t, h, first, "")
	h.events(t, first, 5*time.Second)
	// Finished jobs stay streamable for the retention time, then go.
	second, e := h.create(t, `{"operation":"model_list","hive_id":"h"}`)
	if e.Error != "" {
		t.Fatalf("after the first ended: %+v", e)
	}
	h.events(t, second, 5*time.Second)
	bustest.WaitFor(t, 5*time.Second, func() error {
		ref, _ := json.Marshal(wire.JobRef{JobID: second})
		msg, err := h.nc.Request(wire.SubjectJobsReplay, ref, time.Second)
		if err != nil {
			return err
		}
		if !strings.Contains(string(msg.Data), `"code":"not_found"`) {
			return fmt.Errorf("still kept: %.80s", msg.Data)
		}
		return nil
	})
}

func TestModels(t *testing.T) {
	dir := t.TempDir()
	_ = os.MkdirAll(filepath.Join(dir, "llama-3.2-1b"), 0o755)
	_ = os.WriteFile(filepath.Join(dir, "llama-3.2-1b", "model.gguf"), make([]byte, 1234), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "tiny.gguf"), make([]byte, 10), 0o644)
	h := start(t, Config{ModelDir: dir, MaxEvents: 1000})
	id, _ := h.create(t, `{"operation":"model_list","hive_id":"h"}`)
	evs := h.events(t, id, 5*time.Second)
	last := evs[len(evs)-2].Text
	var list []modelEntry
	if err := json.Unmarshal([]byte(strings.SplitN(last, "\n", 2)[1]), &list); err != nil || len(list) != 2 ||
		list[0].ID != "llama-3.2-1b" || list[0].Size != 1234 || list[1].Size != 10 || list[0].Status != "Available" {
		t.Fatalf("model_list JSON line %q: %v", last, err)
	}
	id, _ = h.create(t, `{"operation":"model_get","hive_id":"h","id":"tiny.gguf"}`)
	if evs = h.events(t, id, 5*time.Second); endOf(evs) != wire.EndDone || !strings.Contains(allText(evs), `"size": 10`) {
		t.Fatalf("model_get:\n%s", allText(evs))
	}
	// A path or a hidden name is refused at submit; a missing model fails
	// the job.
	for _, bad := range []string{"../etc", "a/b", ".hidden", "-rf"} {
		if _, e := h.create(t, `{"operation":"model_delete","hive_id":"h","id":"`+bad+`"}`); e.Code != wire.CodeInvalid {
			t.Fatalf("model_delete %q: %+v, want invalid", bad, e)
		}
	}
	id, _ = h.create(t, `{"operation":"model_delete","hive_id":"h","id":"nope"}`)
	if evs = h.events(t, id, 5*time.Second); !strings.HasPrefix(endOf(evs), "[ERROR] ") {
		t.Fatalf("model_delete nope: %s", endOf(evs))
	}
	id, _ = h.create(t, `{"operation":"model_delete","hive_id":"h","id":"llama-3.2-1b"}`)
	if evs = h.events(t, id, 5*time.Second); endOf(evs) != wire.EndDone {
		t.Fatalf("model_delete: %s", allText(evs))
	}
	if _, err := os.Stat(filepath.Join(dir, "llama-3.2-1b")); err == nil {
		t.Fatal("model still on disk")
	}
	id, _ = h.create(t, `{"operation":"model_download","hive_id":"h","model":"m"}`)
	if evs = h.events(t, id, 5*time.Second); !strings.HasPrefix(endOf(evs), "[ERROR] model_download is not supported by this hive") {
		t.Fatalf("model_download: %s", endOf(evs))
	}

	// Every job above is counted by operation and result, lint-clean.
	want := `
# HELP hive_jobs_total Finished jobs by operation and result.
# TYPE hive_jobs_total counter
hive_jobs_total{operation="model_delete",result="done"} 1
hive_jobs_total{operation="model_delete",result="error"} 1
hive_jobs_total{operation="model_download",result="error"} 1
hive_jobs_total{operation="model_get",result="done"} 1
hive_jobs_total{operation="model_list",result="done"} 1
# HELP hive_jobs_running Jobs running now.
# TYPE hive_jobs_running gauge
hive_jobs_running 0
`
	// A job's end reaches its stream before the job is counted: poll.
	bustest.WaitFor(t, 5*time.Second, func() error {
		return testutil.GatherAndCompare(h.reg, strings.NewReader(want), "hive_jobs_total", "hive_jobs_running")
	})
	if problems, err := testutil.GatherAndLint(h.reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// Narration beyond MaxEvents still goes out live but is not kept; the
// replay says how much it lacks.
func TestNarrationBoundedForReplay(t *testing.T) {
	h := start(t, Config{MaxEvents: 2})
	h.gaps = true
	id, _ := h.create(t, `{"operation":"model_list","hive_id":"h"}`)
	h.events(t, id, 5*time.Second)
	ref, _ := json.Marshal(wire.JobRef{JobID: id})
	msg, err := h.nc.Request(wire.SubjectJobsReplay, ref, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rp wire.JobReplay
	_ = json.Unmarshal(msg.Data, &rp)
	var seqs []int
	for _, ev := range rp.Events {
		seqs = append(seqs, ev.Seq)
	}
	if fmt.Sprint(seqs) != "[1 2 4 5]" || !strings.Contains(rp.Events[2].Text, "(1 narration lines were not kept for replay)") ||
		rp.Events[3].End != wire.EndDone {
		t.Fatalf("replay %+v", rp.Events)
	}
}

func TestRefusesToStopNonWorkers(t *testing.T) {
	h := start(t, Config{})
	p := exec.Command("sleep", "30")
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Process.Kill(); _ = p.Wait() }()
	id, _ := h.create(t, fmt.Sprintf(`{"operation":"worker_process_delete","hive_id":"h","pid":%d}`, p.Process.Pid))
	if e := endOf(h.events(t, id, 5*time.Second)); !strings.Contains(e, "refusing to stop process") {
		t.Fatalf("end %q", e)
	}
	if err := p.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatal("non-worker was signalled")
	}
	id, _ = h.create(t, `{"operation":"worker_process_get","hive_id":"h","pid":4194000}`)
	if e := endOf(h.events(t, id, 5*time.Second)); !strings.Contains(e, "process 4194000 not found") {
		t.Fatalf("end %q", e)
	}
}

// A worker that ignores SIGTERM is killed after the grace period.
func TestDeleteEscalatesToSIGKILL(t *testing.T) {
	h := start(t, Config{StopGrace: 200 * time.Millisecond, WorkerMatch: "llm-worker-stubborn", WorkerMatchOn: workerproc.OnCmdline})
	// A worker by its command line (not spawned here) that traps TERM.
	p := exec.Command("sh", "-c", "trap '' TERM; echo trapped; while :; do sleep 0.05; done", "llm-worker-stubborn")
	out, err := p.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	// The shell says when its trap is in place, however slow the machine.
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "trapped\n" {
		t.Fatalf("shell: %q %v", line, err)
	}
	exited := make(chan struct{})
	go func() { _ = p.Wait(); close(exited) }()
	defer func() { _ = p.Process.Kill(); <-exited }()
	stopped, _ := h.nc.SubscribeSync(wire.SubjectWorkersStopped)
	_ = h.nc.Flush()

	id, _ := h.create(t, fmt.Sprintf(`{"operation":"worker_process_delete","hive_id":"h","pid":%d}`, p.Process.Pid))
	evs := h.events(t, id, 10*time.Second)
	if endOf(evs) != wire.EndDone || !strings.Contains(allText(evs), "still running after 200ms; sending SIGKILL") {
		t.Fatalf("delete:\n%s", allText(evs))
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("stubborn worker survived")
	}
	if p.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("ended by %v, want SIGKILL", p.ProcessState)
	}
	if _, err := stopped.NextMsg(2 * time.Second); err != nil {
		t.Fatal("no hive.workers.stopped")
	}
}

// Placement happens only on a real cgroup v2 file system; a look-alike
// directory tree is left alone.
func TestCgroupPlacementOnlyOnCgroup2(t *testing.T) {
	root := filepath.Join(t.TempDir(), "rbee.slice")
	m := &Jobs{cfg: Config{CgroupRoot: root}}
	if msg := m.placeInCgroup(&spawned{pid: os.Getpid(), port: 9555}); msg != "" {
		t.Fatalf("placed into a non-cgroup tree: %s", msg)
	}
	if _, err := os.Stat(root); err == nil {
		t.Fatal("created a directory in a non-cgroup tree")
	}
}
