package jobs

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/workerproc"
)

var workerDir string // holds llm-worker-rbee-cpu (the demo worker) and test scripts

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hive-jobs-")
	if err != nil {
		panic(err)
	}
	workerDir = dir
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "llm-worker-rbee-cpu"), "../../cmd/demo-worker")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build demo worker: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	if z := zombies(); len(z) > 0 {
		fmt.Fprintf(os.Stderr, "zombie children left: %v\n", z)
		code = 1
	}
	_ = os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// zombies lists this process's children that exited and were never reaped.
func zombies() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[0] == "Z" && f[1] == strconv.Itoa(os.Getpid()) {
			out = append(out, pid)
		}
	}
	return out
}

type harness struct {
	m   *Jobs
	nc  *bus.Conn
	reg *prometheus.Registry // the module's metrics, pedantic
	// gaps allows Seq gaps in replays (narration beyond MaxEvents).
	gaps bool
}

func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	b := bustest.Start(t)
	if cfg.WorkerDir == "" {
		cfg.WorkerDir = workerDir
	}
	if cfg.ModelDir == "" {
		cfg.ModelDir = t.TempDir()
	}
	cfg.LogDir = t.TempDir()
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir() // a state dir is one hive's alone
	}
	if cfg.HiveID == "" {
		cfg.HiveID = "h1"
	}
	if cfg.WorkerMatch == "" {
		cfg.WorkerMatch = workerproc.DefaultPattern
	}
	cfg.StopWorkersOnExit = true
	if cfg.StopGrace == 0 {
		cfg.StopGrace = time.Second
	}
	reg := prometheus.NewPedanticRegistry()
	m, err := New(cfg, b, bustest.Logger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := b.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	bustest.RunModule(t, "jobs", m.Run, m.Ready())
	return &harness{m: m, nc: nc, reg: reg}
}

// create submits an operation; it returns the job id or the error reply.
func (h *harness) create(t *testing.T, body string) (string, wire.ErrorReply) {
	t.Helper()
	msg, err := h.nc.Request(wire.SubjectJobsCreate, []byte(body), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var e wire.ErrorReply
	if json.Unmarshal(msg.Data, &e); e.Error != "" {
		return "", e
	}
	var c wire.JobCreated
	if err := json.Unmarshal(msg.Data, &c); err != nil || !wire.ValidJobID(c.JobID) || c.SSEURL != "/v1/jobs/"+c.JobID+"/stream" {
		t.Fatalf("create reply %s", msg.Data)
	}
	return c.JobID, e
}

// events follows a job as the gateway does (subscribe, replay, merge by
// Seq) until its end marker, and returns every event.
func (h *harness) events(t *testing.T, id string, timeout time.Duration) []wire.JobEvent {
	t.Helper()
	ch := make(chan *nats.Msg, 1024)
	sub, err := h.nc.ChanSubscribe(wire.JobEventsSubject(id), ch)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	ref, _ := json.Marshal(wire.JobRef{JobID: id})
	msg, err := h.nc.Request(wire.SubjectJobsReplay, ref, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var rp wire.JobReplay
	if err := json.Unmarshal(msg.Data, &rp); err != nil || rp.JobID != id {
		t.Fatalf("replay %s", msg.Data)
	}
	var out []wire.JobEvent
	last := 0
	add := func(ev wire.JobEvent) bool {
		if ev.Seq <= last {
			return false
		}
		if ev.Seq != last+1 && !h.gaps {
			t.Fatalf("gap: seq %d after %d", ev.Seq, last)
		}
		last = ev.Seq
		out = append(out, ev)
		return ev.End != ""
	}
	for _, ev := range rp.Events {
		if add(ev) {
			return out
		}
	}
	deadline := time.After(timeout)
	for {
		select {
		case m := <-ch:
			var ev wire.JobEvent
			_ = json.Unmarshal(m.Data, &ev)
			if add(ev) {
				return out
			}
		case <-deadline:
			t.Fatalf("job %s did not end within %v; got %+v", id, timeout, out)
		}
	}
}

func allText(evs []wire.JobEvent) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString(e.Text)
		b.WriteString(e.End)
	}
	return b.String()
}

func endOf(evs []wire.JobEvent) string { return evs[len(evs)-1].End }
