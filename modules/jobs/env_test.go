package jobs

import (
	"slices"
	"strings"
	"testing"
)

func TestWorkerEnvIsExplicit(t *testing.T) {
	hive := map[string]string{"PATH": "/opt/bin:/usr/bin", "HOME": "/root", "HIVE_API_TOKEN": "secret-token-0123456789",
		"HIVE_NATS_HUB": "nats-leaf://hive:pw@hub:7422", "AWS_SECRET_ACCESS_KEY": "x", "CUDA_VISIBLE_DEVICES": "0,1"}
	lookup := func(k string) (string, bool) { v, ok := hive[k]; return v, ok }
	env := workerEnv(lookup, "cuda")
	for _, want := range []string{"PATH=/opt/bin:/usr/bin", "HOME=/root", "LANG=C.UTF-8", "CUDA_VISIBLE_DEVICES=0,1", "CUDA_DEVICE_ORDER=PCI_BUS_ID"} {
		if !slices.Contains(env, want) {
			t.Errorf("missing %s in %q", want, env)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "HIVE_") || strings.Contains(kv, "secret") || strings.HasPrefix(kv, "AWS_") || strings.Contains(kv, "pw@") {
			t.Errorf("leaked %s", kv)
		}
	}
	if cpu := workerEnv(lookup, "cpu"); slices.Contains(cpu, "CUDA_DEVICE_ORDER=PCI_BUS_ID") {
		t.Errorf("a CPU worker got a CUDA setting: %q", cpu)
	}
}
