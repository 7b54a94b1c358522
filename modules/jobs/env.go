package jobs

import (
	"strings"
)

// workerEnvPass are the hive's variables a spawned worker inherits: where
// programs and libraries are, the locale, the time zone, the model caches
// and the GPUs the hive itself may use. Nothing else: the hive's own
// environment holds its API token (HIVE_API_TOKEN) and the hub's leaf
// password (HIVE_NATS_HUB), which /proc/<worker>/environ would show to
// whoever runs as the worker.
var workerEnvPass = []string{
	"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "LD_LIBRARY_PATH",
	"HF_HOME", "HF_HUB_CACHE", "HF_HUB_OFFLINE", "CUDA_HOME",
	"CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER",
}

// Defaults for a hive started with an empty environment (systemd gives
// PATH only).
var workerEnvDefaults = map[string]string{
	"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME": "/",
	"LANG": "C.UTF-8",
}

// workerEnv is a spawned worker's whole environment. A CUDA worker gets
// CUDA_DEVICE_ORDER=PCI_BUS_ID unless the hive has one: CUDA's default
// order (fastest first) may number GPUs differently from NVML and
// nvidia-smi, whose order --device and the telemetry's gpu indices use.
func workerEnv(lookup func(string) (string, bool), workerType string) []string {
	env := make([]string, 0, len(workerEnvPass)+1)
	seen := map[string]bool{}
	for _, k := range workerEnvPass {
		v, ok := lookup(k)
		if !ok {
			v, ok = workerEnvDefaults[k]
		}
		if ok && !strings.HasPrefix(k, "HIVE_") {
			env = append(env, k+"="+v)
			seen[k] = true
		}
	}
	if workerType == "cuda" && !seen["CUDA_DEVICE_ORDER"] {
		env = append(env, "CUDA_DEVICE_ORDER=PCI_BUS_ID")
	}
	return env
}
