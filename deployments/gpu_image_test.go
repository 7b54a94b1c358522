//go:build compose

package deployments_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestImageGPU runs both images with a glibc-linked nvidia-smi mounted
// where the NVIDIA container runtime puts the host's (/usr/bin): a build
// of bench/gpucheck, whose fake nvidia-smi answers as the H200 did. The
// GPU image runs it and reports the GPU; the FROM scratch image, the
// control, cannot load it and reports CPU-0 only. This is as far as a
// host without a GPU and the NVIDIA runtime can test the GPU image.
func TestImageGPU(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "nvidia-smi")
	build := exec.Command("go", "build", "-o", fake, "../bench/gpucheck")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the glibc-linked fake nvidia-smi: %v\n%s", err, out)
	}
	if out, _ := exec.Command("file", fake).Output(); len(out) > 0 && !strings.Contains(string(out), "dynamically linked") {
		t.Fatalf("the fake must need glibc's loader, as the real nvidia-smi does: %s", out)
	}
	for image, wantGPU := range map[string]bool{"rbee-hive-gpu:dev": true, "rbee-hive:dev": false} {
		t.Run(image, func(t *testing.T) {
			names := gpuNames(t, image, fake)
			if got := len(names) > 0; got != wantGPU {
				t.Fatalf("%s: GPUs %q, want a GPU: %v", image, names, wantGPU)
			}
			if wantGPU && names[0] != "NVIDIA H200" {
				t.Fatalf("%s: GPU %q", image, names[0])
			}
			t.Logf("%s: GPUs %q", image, names)
		})
	}
}

// gpuNames starts image with the fake nvidia-smi and returns the GPU
// names its /capabilities reports.
func gpuNames(t *testing.T, image, fake string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "run", "-d", "--rm", "-p", "127.0.0.1::7835",
		"-v", fake+":/usr/bin/nvidia-smi:ro", image, "--queen-url", "", "--nats-listen", "").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run %s: %v\n%s", image, err, out)
	}
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
	port, err := exec.CommandContext(ctx, "docker", "port", id, "7835/tcp").Output()
	if err != nil {
		t.Fatalf("docker port: %v", err)
	}
	url := "http://" + strings.TrimSpace(strings.Split(string(port), "\n")[0]) + "/capabilities"
	var caps struct {
		Devices []struct {
			Name       string `json:"name"`
			DeviceType string `json:"device_type"`
		} `json:"devices"`
	}
	for {
		resp, err := http.Get(url)
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&caps)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				break
			}
		}
		if ctx.Err() != nil {
			logs, _ := exec.Command("docker", "logs", id).CombinedOutput()
			t.Fatalf("%s: no /capabilities: %v\n%s", image, err, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var names []string
	for _, d := range caps.Devices {
		if d.DeviceType == "gpu" {
			names = append(names, d.Name)
		}
	}
	return names
}
