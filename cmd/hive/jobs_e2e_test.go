package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rbee/hive/bus/wire"
)

func postJob(t *testing.T, base, body string) string {
	t.Helper()
	return postJobHdr(t, base, nil, body)
}

// postJobHdr posts a job with extra headers (a token) and returns its id.
func postJobHdr(t *testing.T, base string, hdr map[string]string, body string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/jobs", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var c wire.JobCreated
	if resp.StatusCode != 200 || json.Unmarshal(b, &c) != nil || c.SSEURL != "/v1/jobs/"+c.JobID+"/stream" {
		t.Fatalf("POST /v1/jobs %s: %d %s", body, resp.StatusCode, b)
	}
	return c.JobID
}

// jobStream reads a job stream to its end and returns the data lines.
func jobStream(t *testing.T, base, id string) []string {
	t.Helper()
	resp, err := http.Get(base + "/v1/jobs/" + id + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream %s: %d %s", id, resp.StatusCode, b)
	}
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			lines = append(lines, d)
		}
	}
	return lines
}

func lastLine(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

var (
	spawnedRe    = regexp.MustCompile(`spawned \(PID: (\d+), port: (\d+)\)`)
	spawnedPIDRe = regexp.MustCompile(`\(PID: (\d+), port: \d+\)`)
)

func TestJobsSpawnAppearsInTelemetryAndStops(t *testing.T) {
	modelDir, logDir := t.TempDir(), t.TempDir()
	h := startHive(t, "--worker-dir", binDir, "--model-dir", modelDir, "--worker-log-dir", logDir, "--stop-workers-on-exit")
	nc, err := nats.Connect(h.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	natsSub, _ := nc.SubscribeSync(wire.SubjectTelemetry)
	_ = nc.Flush()
	sse := openSSE(t, h.httpBase+"/v1/heartbeats/stream")
	sse.next(t, 5*time.Second)

	id := postJob(t, h.httpBase, `{"operation":"worker_spawn","hive_id":"localhost","model":"tinyllama","worker":"cpu","device":0}`)
	lines := jobStream(t, h.httpBase, id)
	if lastLine(lines) != "[DONE]" {
		t.Fatalf("spawn stream ended %q:\n%s", lastLine(lines), strings.Join(lines, "\n"))
	}
	m := spawnedRe.FindStringSubmatch(strings.Join(lines, "\n"))
	if m == nil {
		t.Fatalf("no pid and port in:\n%s", strings.Join(lines, "\n"))
	}
	pid, _ := strconv.Atoi(m[1])
	port := m[2]

	// Within two ticks, on SSE and on NATS, with instance = port.
	findWorker := func(data string) *wire.ProcessStats {
		te := decodeStrict(t, data)
		for i := range te.Workers {
			if int(te.Workers[i].PID) == pid {
				return &te.Workers[i]
			}
		}
		return nil
	}
	var ws *wire.ProcessStats
	for tick := 1; ws == nil; tick++ {
		if tick > 2 {
			t.Fatal("spawned worker not in the SSE stream within 2 ticks")
		}
		ws = findWorker(sse.next(t, 3*time.Second).Data)
	}
	if ws.Instance != port || ws.Group != "llm" || ws.Model == nil || *ws.Model != "tinyllama" {
		t.Fatalf("worker in telemetry %+v, want instance %s", ws, port)
	}
	onNATS := false
	for i := 0; i < 4 && !onNATS; i++ {
		msg, err := natsSub.NextMsg(3 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		w := findWorker(string(msg.Data))
		onNATS = w != nil && w.Instance == port
	}
	if !onNATS {
		t.Fatal("spawned worker not on hive.telemetry")
	}

	// A stream opened after the job finished replays it; two streams agree.
	again := jobStream(t, h.httpBase, id)
	if strings.Join(again, "\n") != strings.Join(lines, "\n") {
		t.Fatalf("late stream differs:\n%s\n---\n%s", strings.Join(again, "\n"), strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[0], "rbee_hive::job_router::execute_operation") || lines[1] != "Executing operation: worker_spawn" {
		t.Fatalf("narration header %q %q", lines[0], lines[1])
	}

	del := postJob(t, h.httpBase, fmt.Sprintf(`{"operation":"worker_process_delete","hive_id":"localhost","pid":%d}`, pid))
	if l := jobStream(t, h.httpBase, del); lastLine(l) != "[DONE]" {
		t.Fatalf("delete ended %q", lastLine(l))
	}
	for tick := 1; ; tick++ {
		if findWorker(sse.next(t, 3*time.Second).Data) == nil {
			break
		}
		if tick >= 2 {
			t.Fatal("stopped worker still in telemetry after 2 ticks")
		}
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("worker %d still exists", pid)
	}
}

func TestJobCancelAndFinishedJobs(t *testing.T) {
	h := startHive(t, "--worker-dir", binDir, "--model-dir", t.TempDir(), "--worker-log-dir", t.TempDir())
	id := postJob(t, h.httpBase, `{"operation":"hive_check"}`)
	req, _ := http.NewRequest(http.MethodDelete, h.httpBase+"/v1/jobs/"+id, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != `{"job_id":"`+id+`","status":"cancelled"}` {
		t.Fatalf("cancel: %d %s", resp.StatusCode, b)
	}
	if l := jobStream(t, h.httpBase, id); lastLine(l) != "[CANCELLED]" {
		t.Fatalf("cancelled job ended %q", lastLine(l))
	}
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("cancel of a finished job: %d", resp.StatusCode)
	}
	code, body, _ := httpGet(t, h.httpBase+"/v1/jobs/job-00000000-0000-4000-8000-000000000000/stream")
	if code != 404 || !strings.Contains(body, `"error"`) {
		t.Fatalf("unknown job stream: %d %s", code, body)
	}
	// A failing job ends with [ERROR] and its message.
	id = postJob(t, h.httpBase, `{"operation":"model_get","hive_id":"localhost","id":"nope"}`)
	if l := lastLine(jobStream(t, h.httpBase, id)); !strings.HasPrefix(l, "[ERROR] model \"nope\" not found") {
		t.Fatalf("failed job ended %q", l)
	}
}

// POST /v1/shutdown answers 200 and the hive exits 0; workers it spawned
// keep running unless --stop-workers-on-exit.
func TestShutdownEndpoint(t *testing.T) {
	for _, stop := range []bool{false, true} {
		t.Run(fmt.Sprintf("stop-workers=%v", stop), func(t *testing.T) {
			args := []string{"--worker-dir", binDir, "--model-dir", t.TempDir(), "--worker-log-dir", t.TempDir()}
			if stop {
				args = append(args, "--stop-workers-on-exit")
			}
			h := startHive(t, args...)
			id := postJob(t, h.httpBase, `{"operation":"worker_spawn","hive_id":"localhost","model":"m","worker":"cpu","device":0}`)
			m := spawnedRe.FindStringSubmatch(strings.Join(jobStream(t, h.httpBase, id), "\n"))
			if m == nil {
				t.Fatal("spawn failed")
			}
			pid, _ := strconv.Atoi(m[1])
			t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })

			resp, err := http.Post(h.httpBase+"/v1/shutdown", "application/json", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("shutdown: %d", resp.StatusCode)
			}
			select {
			case <-h.exited:
			case <-time.After(5 * time.Second):
				t.Fatal("hive did not exit after /v1/shutdown")
			}
			if h.exitErr != nil {
				t.Fatalf("exit: %v", h.exitErr)
			}
			alive := syscall.Kill(pid, 0) == nil
			if alive == stop {
				t.Fatalf("worker alive=%v after shutdown with stop-workers-on-exit=%v", alive, stop)
			}
		})
	}
}
