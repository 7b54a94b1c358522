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

// TestImageGPUReadsNVML runs the GPU image with the fake libnvidia-ml.so.1
// (internal/nvml/fake) mounted, as the NVIDIA runtime mounts the driver's:
// the hive in it is the cgo build, and reads the GPU through NVML.
func TestImageGPUReadsNVML(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "libnvidia-ml.so.1")
	if out, err := exec.Command("cc", "-shared", "-fPIC", "-O2", "-o", lib, "../internal/nvml/fake/fake_nvml.c", "-lpthread").CombinedOutput(); err != nil {
		t.Fatalf("build the fake NVML library: %v\n%s", err, out)
	}
	for _, f := range []string{"gpus", "procs"} {
		b, err := os.ReadFile("../internal/nvml/testdata/h200-busy/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Chmod(dir, 0o755)
	caps := capabilities(t, "rbee-hive-gpu:dev", "-v", dir+":/fake:ro", "-e", "FAKE_NVML_DIR=/fake", "-e", "HIVE_NVML_LIB=/fake/libnvidia-ml.so.1")
	if caps.GPUSource != "nvml" || caps.DriverVersion != "580.159.04" || len(caps.Devices) < 2 || caps.Devices[0].Name != "NVIDIA H200" {
		t.Fatalf("capabilities %+v", caps)
	}
}

// capsBody is what the image tests read of /capabilities.
type capsBody struct {
	Devices []struct {
		Name       string `json:"name"`
		DeviceType string `json:"device_type"`
	} `json:"devices"`
	GPUSource     string `json:"gpu_source"`
	DriverVersion string `json:"driver_version"`
}

// gpuNames starts image with the fake nvidia-smi and returns the GPU
// names its /capabilities reports.
func gpuNames(t *testing.T, image, fake string) []string {
	t.Helper()
	caps := capabilities(t, image, "-v", fake+":/usr/bin/nvidia-smi:ro")
	var names []string
	for _, d := range caps.Devices {
		if d.DeviceType == "gpu" {
			names = append(names, d.Name)
		}
	}
	return names
}

// capabilities starts image with the extra docker run arguments and
// returns its /capabilities.
func capabilities(t *testing.T, image string, runArgs ...string) capsBody {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"run", "-d", "--rm", "-p", "127.0.0.1::7835"}, runArgs...)
	args = append(args, image, "--queen-url", "", "--nats-listen", "")
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
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
	var caps capsBody
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
	return caps
}
