package capabilities

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/gpu"
	"github.com/rbee/hive/internal/nvsmi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeDetector struct {
	gpus  []GPU
	err   error
	calls int
}

func (f *fakeDetector) Describe(context.Context) (gpu.Description, error) {
	f.calls++
	return gpu.Description{GPUs: f.gpus}, f.err
}

func TestDevicesGPUsFirstCPULast(t *testing.T) {
	b := bustest.Start(t)
	c, _ := New(Config{Detector: &fakeDetector{gpus: []GPU{
		{Index: 0, Name: "NVIDIA GeForce RTX 3090", MemTotalMiB: 24576, ComputeCapability: "8.6"},
		{Index: 1, Name: "NVIDIA A10", MemTotalMiB: 23028, ComputeCapability: "8.6"},
	}}}, b, nil)
	got := c.Get(context.Background())
	raw, _ := json.Marshal(got)
	cores := runtime.NumCPU()
	wantPrefix := `{"devices":[{"id":"GPU-0","name":"NVIDIA GeForce RTX 3090","device_type":"gpu","vram_gb":24,"compute_capability":"8.6"},` +
		`{"id":"GPU-1","name":"NVIDIA A10","device_type":"gpu","vram_gb":22,"compute_capability":"8.6"},` +
		fmt.Sprintf(`{"id":"CPU-0","name":"CPU (%d cores)","device_type":"cpu","vram_gb":`, cores)
	if !strings.HasPrefix(string(raw), wantPrefix) || !strings.HasSuffix(string(raw), `,"compute_capability":null}]}`) {
		t.Fatalf("got %s", raw)
	}
	if ram := *got.Devices[2].VRAMGB; ram < 1 || ram > 4096 {
		t.Fatalf("RAM %d GiB", ram)
	}
}

func TestDetectionErrorStillReportsCPU(t *testing.T) {
	c, _ := New(Config{Detector: &fakeDetector{err: fmt.Errorf("nvidia-smi: exit status 9")}}, bustest.Start(t), nil)
	got := c.Get(context.Background())
	if len(got.Devices) != 1 || got.Devices[0].ID != "CPU-0" {
		t.Fatalf("got %+v", got)
	}
}

func TestRefreshAtMostEveryMinRefresh(t *testing.T) {
	now := time.Unix(1000, 0)
	det := &fakeDetector{}
	c, _ := New(Config{Detector: det, Now: func() time.Time { return now }}, bustest.Start(t), nil)
	c.Get(context.Background())
	now = now.Add(9 * time.Second)
	c.Get(context.Background())
	if det.calls != 1 {
		t.Fatalf("%d detections within 10 s", det.calls)
	}
	now = now.Add(2 * time.Second)
	c.Get(context.Background())
	if det.calls != 2 {
		t.Fatalf("%d detections after 11 s", det.calls)
	}
}

func TestAnswersOverTheBus(t *testing.T) {
	b := bustest.Start(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "query-gpu-caps.csv"), []byte("0, NVIDIA L4, 23034, 8.9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, _ := New(Config{Detector: gpu.FromRunner(nvsmi.Replay{Dir: dir})}, b, bustest.Logger(t))
	bustest.RunModule(t, "capabilities", c.Run, c.Ready())

	nc, _ := b.Connect("test")
	var caps wire.Capabilities
	bustest.WaitFor(t, 5*time.Second, func() error {
		m, err := nc.Request(wire.SubjectCapabilitiesGet, nil, time.Second)
		if err != nil {
			return err
		}
		return json.Unmarshal(m.Data, &caps)
	})
	if len(caps.Devices) != 2 || caps.Devices[0].Name != "NVIDIA L4" || *caps.Devices[0].VRAMGB != 22 {
		t.Fatalf("got %+v", caps)
	}
	m, err := nc.Request(wire.SubjectCapabilitiesGet, []byte("{bad"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var e wire.ErrorReply
	if json.Unmarshal(m.Data, &e); e.Code != wire.CodeInvalid || e.Error == "" {
		t.Fatalf("bad request answered %s", m.Data)
	}
}
