package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rbee/hive/bus/bustest"
)

// longModel is a model path as long as the one that pushed the old
// dashboard's chart off a 1280 px screen.
const longModel = "models/meta-llama/Meta-Llama-3.1-70B-Instruct-GPTQ-INT4/snapshots/2b7c5d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8"

// gpuDashboardHive is a realistic hive for the dashboard: id gpu-01, two
// GPUs from the fake NVML library, three workers spawned as the Queen
// would (two on a GPU, one with a long model name).
func gpuDashboardHive(t *testing.T) *hiveProc {
	t.Helper()
	if nvmlHiveBin == "" {
		t.Skip("no C compiler: no cgo hive or fake NVML library")
	}
	dir := t.TempDir()
	gpus := "0 GPU-4d8d8a84-cbed-9747-95cd-d830557304f2 143771 61440 87 63 612000 700000 9 0 NVIDIA H200\n" +
		"1 GPU-9a1e2b3c-4d5e-6f70-8192-a3b4c5d6e7f8 143771 40960 64 58 455000 700000 9 0 NVIDIA H200\n"
	// GPU 0 is a Hopper with GPM and v2 memory info; GPU 1 reserves
	// nothing and has no GPM: its card shows neither.
	for name, text := range map[string]string{"gpus": gpus, "reserved": "0 615\n", "gpm": "0 42.5 30.1 55 61.2 0 0\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := startHiveBin(t, nvmlHiveBin, []string{"FAKE_NVML_DIR=" + dir, "HIVE_NVML_LIB=" + fakeNVML},
		"--gpu-source", "nvml", "--hive-id", "gpu-01", "--telemetry-interval", "250ms",
		"--worker-dir", binDir, "--model-dir", t.TempDir(), "--worker-log-dir", t.TempDir(), "--stop-workers-on-exit")
	var pids []int
	for _, model := range []string{"meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-32B-Instruct", longModel} {
		lines := jobStream(t, h.httpBase, postJob(t, h.httpBase, `{"operation":"worker_spawn","hive_id":"gpu-01","model":"`+model+`","worker":"cpu","device":0}`))
		m := spawnedRe.FindStringSubmatch(strings.Join(lines, "\n"))
		if lastLine(lines) != "[DONE]" || m == nil {
			t.Fatalf("spawn %s: %s", model, lastLine(lines))
		}
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
		// The hive is killed at the end, so it cannot stop its workers.
		t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	}
	procs := fmt.Sprintf("0 %d 59392 81\n1 %d 38912 62\n", pids[0], pids[1])
	if err := os.WriteFile(filepath.Join(dir, "procs"), []byte(procs), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

var publishedRe = regexp.MustCompile(`(?m)^hive_telemetry_events_published_total\{[^}]*\} (\d+)`)

// The dashboard an operator keeps open: the host's CPU and memory, each
// GPU with utilisation, memory, temperature, power and health, the Queen
// and hub links, workers with units; charts with axes filled from the
// hive's history at load; no horizontal scroll at 1280 px (with a long
// model name) nor at phone width (390 px). HIVE_DASHBOARD_SCREENSHOTS=dir
// saves dashboard-1280.png and dashboard-390.png (the README's).
func TestDashboardHostGPUsAndHistory(t *testing.T) {
	browser(t)
	h := gpuDashboardHive(t)
	// The history the page must start from: a dozen events or more.
	bustest.WaitFor(t, 30*time.Second, func() error {
		_, body, _ := httpGet(t, h.httpBase+"/metrics")
		m := publishedRe.FindStringSubmatch(body)
		if m == nil {
			return fmt.Errorf("no hive_telemetry_events_published_total")
		}
		if n, _ := strconv.Atoi(m[1]); n < 12 {
			return fmt.Errorf("%d events published", n)
		}
		return nil
	})
	shots := os.Getenv("HIVE_DASHBOARD_SCREENSHOTS")
	if shots != "" {
		time.Sleep(20 * time.Second) // a longer line on the charts, for the README's pictures only
	}
	ctx := newBrowser(t, 1280, 900, 90*time.Second)
	loaded := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(h.httpBase+"/"), chromedp.WaitReady(chromedp.CSS("#rows"))); err != nil {
		t.Fatalf("open the dashboard: %v", err)
	}
	eval := func(js string) float64 {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	pageText(t, ctx, "the host summary, GPUs, links and workers", 15*time.Second, contains(
		"gpu-01", "health: healthy", "Queen: none (standalone)", "hub: not configured",
		"GPU 0", "GPU 1", "NVIDIA H200", "60.0 GiB of 140.4 GiB", "63 °C", "612 of 700 W",
		"Llama-3.1-8B-Instruct", "Qwen2.5-32B-Instruct", "58.0 GiB of 140.4 GiB", "no GPU",
		"(615 MiB reserved)", "SM active\n42.5 %", "occupancy\n30.1 %", "tensor\n55.0 %", "DRAM bandwidth\n61.2 %"))
	if n := eval(`[...document.querySelectorAll("#gpus dt")].filter(dt => dt.textContent == "SM active").length`); n != 1 {
		t.Errorf("%v GPU cards show SM active, want 1 (GPU 1 has no GPM)", n)
	}

	bustest.WaitFor(t, 20*time.Second, func() error {
		if n := eval(`document.querySelectorAll("td.wstate.ready").length`); n != 3 {
			return fmt.Errorf("%v workers ready on the page, want 3", n)
		}
		return nil
	})
	// The charts hold events from before the page was opened: the history.
	oldest := eval(`Number(document.getElementById("chart-cpu").dataset.oldest || 0)`)
	if points := eval(`Number(document.getElementById("chart-cpu").dataset.points || 0)`); points < 12 || oldest == 0 || oldest > float64(loaded.UnixMilli()-2000) {
		t.Errorf("host CPU chart: %v points, oldest %v, page opened at %d: not filled from the history", points, oldest, loaded.UnixMilli())
	}
	if n := eval(`document.querySelectorAll("#gpus canvas[data-points]").length`); n != 2 {
		t.Errorf("%v GPU charts, want 2", n)
	}
	if max := eval(`Number(document.getElementById("chart-ram").dataset.max)`); max < 1024 {
		t.Errorf("memory chart's axis ends at %v MiB, want the host's total", max)
	}
	// The long model is cut, its full name on hover.
	title, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll("td.model")].map(td => td.title).find(s => s.length > 100) || ""`))
	if err != nil || title != longModel {
		t.Errorf("the long model's cell title %q (%v)", title, err)
	}
	if w := eval(`document.documentElement.scrollWidth`); w > 1280 {
		t.Errorf("at 1280 px the page is %v px wide: it scrolls sideways", w)
	}
	shot := func(name string) {
		if shots == "" {
			return
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shot("dashboard-1280.png")

	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	bustest.WaitFor(t, 10*time.Second, func() error {
		if w := eval(`document.documentElement.scrollWidth`); w > 390 {
			return fmt.Errorf("at 390 px the page is %v px wide: it scrolls sideways", w)
		}
		if cw := eval(`document.getElementById("chart-cpu").clientWidth`); cw < 250 {
			return fmt.Errorf("at 390 px the CPU chart is %v px wide", cw)
		}
		return nil
	})
	if !strings.Contains(mustText(t, ctx), "GPU 1") {
		t.Error("at 390 px the GPUs are gone")
	}
	shot("dashboard-390.png")
}
