package main

// Issue 21: workers the hive can vouch for, against the real binary with
// real child processes: a clean environment, 0600 logs, whole-tree stops
// and nothing forgotten across a kill -9 of the hive.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
)

// workerDir makes a worker directory with two worker types built on the
// demo worker: cuda execs it with a child that ignores SIGTERM; metal is a
// shebang script that runs it as its own child (the script's shell is the
// worker's main process, so its command line is /bin/sh's).
func workerDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	scripts := map[string]string{
		"llm-worker-rbee-cuda":  "#!/bin/sh\nexec " + workerBin + " --term-ignoring-child --cpu 0 --mem-mib 1 \"$@\"\n",
		"llm-worker-rbee-metal": "#!/bin/sh\n" + workerBin + " --cpu 0 --mem-mib 1 \"$@\"\n",
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// spawn runs a worker_spawn job with the token and returns pid and port.
func spawn(t *testing.T, base, worker, model string) (int, string) {
	t.Helper()
	id := postJobHdr(t, base, map[string]string{"Authorization": "Bearer " + e2eToken},
		fmt.Sprintf(`{"operation":"worker_spawn","hive_id":"h","model":%q,"worker":%q,"device":0}`, model, worker))
	lines := jobStreamAuth(t, base, id)
	m := spawnedRe.FindStringSubmatch(strings.Join(lines, "\n"))
	if lastLine(lines) != wire.EndDone || m == nil {
		t.Fatalf("spawn %s: %s", worker, strings.Join(lines, "\n"))
	}
	pid, _ := strconv.Atoi(m[1])
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	return pid, m[2]
}

func jobStreamAuth(t *testing.T, base, id string) []string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/jobs/"+id+"/stream", nil)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var lines []string
	for _, l := range strings.Split(readAll(resp), "\n") {
		if d, ok := strings.CutPrefix(l, "data: "); ok {
			lines = append(lines, d)
		}
	}
	return lines
}

func readAll(resp *http.Response) string {
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// groupOf lists the live processes of process group pgid.
func groupOf(pgid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

func TestWorkersCleanEnvTreeStopAndRestart(t *testing.T) {
	dir, state, logs := workerDir(t), t.TempDir(), t.TempDir()
	args := []string{"--worker-dir", dir, "--state-dir", state, "--worker-log-dir", logs, "--model-dir", t.TempDir(), "--max-workers", "2"}
	env := []string{"HIVE_API_TOKEN=" + e2eToken}
	h := startHiveEnv(t, env, args...)
	cuda, cudaPort := spawn(t, h.httpBase, "cuda", "m-cuda")
	metal, metalPort := spawn(t, h.httpBase, "metal", "m-metal")

	// A clean environment: no HIVE_* secret, what a worker needs.
	for _, pid := range []int{cuda, metal} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			t.Fatal(err)
		}
		environ := string(b)
		if strings.Contains(environ, "HIVE_") || strings.Contains(environ, e2eToken) || !strings.Contains(environ, "PATH=") {
			t.Errorf("worker %d environment: %q", pid, strings.ReplaceAll(environ, "\x00", " "))
		}
		if pid == cuda && !strings.Contains(environ, "CUDA_DEVICE_ORDER=PCI_BUS_ID") {
			t.Errorf("CUDA worker without CUDA_DEVICE_ORDER: %q", environ)
		}
	}
	for _, port := range []string{cudaPort, metalPort} {
		var log string
		for _, p := range []string{"cuda", "metal"} {
			if f := filepath.Join(logs, "worker-"+p+"-"+port+".log"); fileExists(f) {
				log = f
			}
		}
		if st, err := os.Stat(log); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("worker log %s: %v %v", log, st, err)
		}
	}
	bustest.WaitFor(t, 10*time.Second, func() error {
		if n := len(groupOf(cuda)); n < 2 {
			return fmt.Errorf("cuda worker's group has %d processes, want it and its child", n)
		}
		return nil
	})

	// kill -9, then a new hive on the same state: both workers are its
	// own again, reported as before and counted.
	_ = h.cmd.Process.Kill()
	<-h.exited
	h2 := startHiveEnv(t, env, args...)
	sse := openSSEReq(t, authGet(h2.httpBase+"/v1/heartbeats/stream"))
	want := map[int][2]string{cuda: {cudaPort, "m-cuda"}, metal: {metalPort, "m-metal"}}
	deadline := time.Now().Add(20 * time.Second)
	for found := 0; found < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the adopted workers are not both in the stream")
		}
		found = 0
		for _, w := range decodeStrict(t, sse.next(t, 10*time.Second).Data).Workers {
			if wt, ok := want[int(w.PID)]; ok && w.Group == "llm" && w.Instance == wt[0] && w.Model != nil && *w.Model == wt[1] {
				found++
			}
		}
	}
	code, body, _ := do(t, "POST", h2.httpBase+"/v1/jobs", map[string]string{"Authorization": "Bearer " + e2eToken, "Content-Type": "application/json"},
		`{"operation":"worker_spawn","hive_id":"h","model":"m3","worker":"cuda","device":0}`)
	if code != 409 || !strings.Contains(body, "max 2") {
		t.Errorf("a third worker after the restart: %d %s, want 409 (the adopted ones count)", code, body)
	}

	// Stopping through the API stops the whole tree: the shebang worker's
	// shell and its child, the CUDA worker and its TERM-ignoring child.
	metalKids := groupOf(metal)
	cudaKids := groupOf(cuda)
	for _, pid := range []int{metal, cuda} {
		id := postJobHdr(t, h2.httpBase, map[string]string{"Authorization": "Bearer " + e2eToken},
			fmt.Sprintf(`{"operation":"worker_process_delete","hive_id":"h","pid":%d}`, pid))
		if lines := jobStreamAuth(t, h2.httpBase, id); lastLine(lines) != wire.EndDone {
			t.Fatalf("stop %d: %s", pid, strings.Join(lines, "\n"))
		}
	}
	for _, pid := range append(metalKids, cudaKids...) {
		if alive(pid) {
			t.Errorf("process %d of a stopped worker is still alive", pid)
		}
	}
	if len(cudaKids) < 2 || len(metalKids) < 2 {
		t.Errorf("groups before the stop: cuda %v, metal %v", cudaKids, metalKids)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func authGet(url string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	return req
}

// Readiness: a spawned worker is starting, then ready once its /health
// answers (for 10 s: room for a starved machine's spawn and first
// probes), unresponsive once it has failed for the configured time; one
// killed with SIGKILL and one stopped through the API each get one last
// event, "exited" with how they ended. The Queen's strict decode passes.
func TestWorkerStates(t *testing.T) {
	dir := t.TempDir()
	for name, extra := range map[string]string{"llm-worker-rbee-cpu": "--healthy-for 10s", "llm-worker-rbee-metal": ""} {
		body := "#!/bin/sh\nexec " + workerBin + " " + extra + " --cpu 0 --mem-mib 1 \"$@\"\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := startHiveEnv(t, []string{"HIVE_API_TOKEN=" + e2eToken, "HIVE_WORKER_UNRESPONSIVE_AFTER=2s"},
		"--worker-dir", dir, "--state-dir", "-", "--worker-log-dir", t.TempDir(), "--model-dir", t.TempDir())
	sse := openSSEReq(t, authGet(h.httpBase+"/v1/heartbeats/stream"))
	flaky, _ := spawn(t, h.httpBase, "cpu", "flaky")
	steady, _ := spawn(t, h.httpBase, "metal", "steady")

	seen := map[int][]string{} // each worker's states, in order, without repeats
	var exits = map[int]*wire.WorkerExit{}
	note := func(ev wire.TelemetryEvent) {
		for _, w := range ev.Workers {
			pid := int(w.PID)
			if s := seen[pid]; len(s) == 0 || s[len(s)-1] != w.State {
				seen[pid] = append(s, w.State)
			}
			if w.State == wire.WorkerExited {
				exits[pid] = w.Exit
			}
		}
	}
	until := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: states %v", what, seen)
			}
			note(decodeStrict(t, sse.next(t, 10*time.Second).Data))
		}
	}
	last := func(pid int) string {
		if s := seen[pid]; len(s) > 0 {
			return s[len(s)-1]
		}
		return ""
	}
	until("both ready", func() bool { return last(flaky) == wire.WorkerReady && last(steady) == wire.WorkerReady })
	until("flaky unresponsive", func() bool { return last(flaky) == wire.WorkerUnresponsive })
	_ = syscall.Kill(steady, syscall.SIGKILL)
	until("steady exited", func() bool { return exits[steady] != nil })
	if e := exits[steady]; e.Signal != "SIGKILL" || e.Code != nil {
		t.Errorf("steady's exit %+v, want signal SIGKILL", *e)
	}
	id := postJobHdr(t, h.httpBase, map[string]string{"Authorization": "Bearer " + e2eToken},
		fmt.Sprintf(`{"operation":"worker_process_delete","hive_id":"h","pid":%d}`, flaky))
	if lines := jobStreamAuth(t, h.httpBase, id); lastLine(lines) != wire.EndDone {
		t.Fatalf("stop flaky: %s", strings.Join(lines, "\n"))
	}
	until("flaky exited", func() bool { return exits[flaky] != nil })
	if e := exits[flaky]; e.Code == nil || *e.Code != 0 {
		t.Errorf("flaky's exit %+v, want code 0 (it exits on SIGTERM)", *e)
	}
	// One exited event each, then gone.
	for range 2 {
		note(decodeStrict(t, sse.next(t, 10*time.Second).Data))
	}
	for _, pid := range []int{flaky, steady} {
		s := seen[pid]
		if s[0] != wire.WorkerStarting || s[len(s)-1] != wire.WorkerExited {
			t.Errorf("worker %d went through %v", pid, s)
		}
	}
	if got := seen[flaky]; strings.Join(got, ",") != "starting,ready,unresponsive,exited" {
		t.Errorf("flaky went through %v", got)
	}
	_, body, _ := do(t, "GET", h.httpBase+"/metrics", map[string]string{"Authorization": "Bearer " + e2eToken}, "")
	for _, state := range []string{"starting", "ready", "unresponsive", "exited"} {
		if v, _ := metricValue(body, "hive_worker_state_changes_total", `state="`+state+`"`); v < 1 {
			t.Errorf("hive_worker_state_changes_total{state=%q} = %v", state, v)
		}
	}
}
