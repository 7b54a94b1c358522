package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// The wire contract of protocol part 1 (sections 3.2, 3.3, 3.5): field
// names in order, and the JSON kind of every value. A rename, a reorder, a
// float sent as an integer or a null number fails here.
var (
	// The original's keys, then the additive ones (node, gpu_indices):
	// after them, so the Queen's decode, which ignores unknown keys, reads
	// the same.
	telemetryKeys = []string{"type", "hive_id", "hive_info", "timestamp", "workers", "node"}
	hiveInfoKeys  = []string{"id", "hostname", "port", "operational_status", "health_status", "version"}
	workerKeys    = []string{"pid", "group", "instance", "cpu_pct", "rss_mb", "io_r_mb_s", "io_w_mb_s",
		"uptime_s", "gpu_util_pct", "vram_mb", "total_vram_mb", "model", "gpu_indices", "state", "gpu_util_source"}
	workerKinds = map[string]string{
		"pid": "uint", "group": "string", "instance": "string", "cpu_pct": "float", "rss_mb": "uint",
		"io_r_mb_s": "float", "io_w_mb_s": "float", "uptime_s": "uint", "gpu_util_pct": "float",
		"vram_mb": "uint", "total_vram_mb": "uint", "model": "string|null",
	}
	sseTimestamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?\+00:00$`)
)

// orderedObject decodes one JSON object keeping key order and raw values.
func orderedObject(raw []byte) ([]string, map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("not an object: %s", raw)
	}
	var keys []string
	vals := map[string]json.RawMessage{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		keys = append(keys, k.(string))
		vals[k.(string)] = v
	}
	return keys, vals, nil
}

func kindOf(v json.RawMessage) string {
	s := string(v)
	switch {
	case s == "null":
		return "null"
	case strings.HasPrefix(s, `"`):
		return "string"
	case strings.ContainsAny(s, ".eE"):
		return "float"
	case strings.HasPrefix(s, "-"):
		return "int"
	case s != "" && s[0] >= '0' && s[0] <= '9':
		return "uint"
	}
	return "other"
}

// checkKeys compares an object's keys, in order, with want.
func checkKeys(what string, raw []byte, want []string) (map[string]json.RawMessage, error) {
	keys, vals, err := orderedObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		return nil, fmt.Errorf("%s keys %v, want %v", what, keys, want)
	}
	return vals, nil
}

// checkKeysThen is checkKeys where the object may end with some of
// optional, in their order (additive fields left out when empty).
func checkKeysThen(what string, raw []byte, want []string, optional ...string) (map[string]json.RawMessage, error) {
	keys, vals, err := orderedObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	rest, ok := strings.CutPrefix(fmt.Sprint(keys), strings.TrimSuffix(fmt.Sprint(want), "]"))
	i := 0
	for _, k := range strings.Fields(strings.TrimSuffix(rest, "]")) {
		for i < len(optional) && optional[i] != k {
			i++
		}
		if i == len(optional) {
			ok = false
		}
	}
	if !ok {
		return nil, fmt.Errorf("%s keys %v, want %v then some of %v", what, keys, want, optional)
	}
	return vals, nil
}

// loadKinds are the load block's fields and their JSON kinds; engine and
// age_ms always, the others only where the engine has them.
var loadKinds = map[string]string{"engine": "string", "queue": "uint", "running": "uint", "kv_used_ratio": "float",
	"kv_used_tokens": "uint", "kv_capacity_tokens": "uint", "prompt_tps": "float", "gen_tps": "float",
	"preemptions": "uint", "age_ms": "uint"}

func checkLoadWire(raw json.RawMessage) error {
	var l map[string]json.RawMessage
	if err := json.Unmarshal(raw, &l); err != nil {
		return fmt.Errorf("load %s: %w", raw, err)
	}
	if l["engine"] == nil || l["age_ms"] == nil {
		return fmt.Errorf("load %s: no engine or age_ms", raw)
	}
	for k, v := range l {
		if want, ok := loadKinds[k]; !ok || kindOf(v) != want {
			return fmt.Errorf("load field %s = %s, want %s", k, v, cmp.Or(want, "no such field"))
		}
	}
	return nil
}

// checkWorkersWire checks a JSON array of ProcessStats.
func checkWorkersWire(raw json.RawMessage) error {
	var workers []json.RawMessage
	if err := json.Unmarshal(raw, &workers); err != nil || string(raw) == "null" {
		return fmt.Errorf("workers %s: %v", raw, err)
	}
	for _, w := range workers {
		wv, err := checkKeysThen("worker", w, workerKeys, "exit", "load")
		if err != nil {
			return err
		}
		if l, ok := wv["load"]; ok {
			if err := checkLoadWire(l); err != nil {
				return err
			}
		}
		for k, want := range workerKinds {
			if got := kindOf(wv[k]); !strings.Contains("|"+want+"|", "|"+got+"|") {
				return fmt.Errorf("worker field %s = %s (%s), want %s", k, wv[k], got, want)
			}
		}
	}
	return nil
}

// checkHiveInfoWire checks a HiveInfo object.
func checkHiveInfoWire(raw json.RawMessage) (map[string]json.RawMessage, error) {
	hv, err := checkKeys("hive_info", raw, hiveInfoKeys)
	if err != nil {
		return nil, err
	}
	if kindOf(hv["port"]) != "uint" || string(hv["health_status"]) != `{"status":"healthy"}` {
		return nil, fmt.Errorf("hive_info %s", raw)
	}
	return hv, nil
}

// telemetryWireErr reports how data differs from a telemetry event as the
// Queen and the Hive UI decode it.
func telemetryWireErr(data string) error {
	v, err := checkKeys("telemetry", []byte(data), telemetryKeys)
	if err != nil {
		return err
	}
	if string(v["type"]) != `"telemetry"` {
		return fmt.Errorf("type %s", v["type"])
	}
	var ts string
	_ = json.Unmarshal(v["timestamp"], &ts)
	if !sseTimestamp.MatchString(ts) {
		return fmt.Errorf("timestamp %q is not RFC 3339 with +00:00", ts)
	}
	hv, err := checkHiveInfoWire(v["hive_info"])
	if err != nil {
		return err
	}
	if string(v["hive_id"]) != string(hv["id"]) {
		return fmt.Errorf("hive_id %s != hive_info.id %s", v["hive_id"], hv["id"])
	}
	if err := checkNodeWire(v["node"]); err != nil {
		return err
	}
	return checkWorkersWire(v["workers"])
}

// checkNodeWire checks the node block: numbers of the right kind, a GPU
// list that is never null.
func checkNodeWire(raw json.RawMessage) error {
	nv, err := checkKeys("node", raw, []string{"cpu_pct", "ram_used_mb", "ram_total_mb", "gpus"})
	if err != nil {
		return err
	}
	if kindOf(nv["cpu_pct"]) != "float" || kindOf(nv["ram_used_mb"]) != "uint" || kindOf(nv["ram_total_mb"]) != "uint" || !strings.HasPrefix(string(nv["gpus"]), "[") {
		return fmt.Errorf("node %s", raw)
	}
	return nil
}

func checkTelemetryWire(t *testing.T, data string) {
	t.Helper()
	if err := telemetryWireErr(data); err != nil {
		t.Fatal(err)
	}
}

func TestWireCheckerRejectsDrift(t *testing.T) {
	good := `{"type":"telemetry","hive_id":"h","hive_info":{"id":"h","hostname":"x","port":7835,"operational_status":"ready","health_status":{"status":"healthy"},"version":"0.1.0"},"timestamp":"2025-10-31T12:44:41.123+00:00","workers":[{"pid":1,"group":"llm","instance":"9","cpu_pct":0.0,"rss_mb":1,"io_r_mb_s":0.0,"io_w_mb_s":0.0,"uptime_s":3,"gpu_util_pct":0.0,"vram_mb":0,"total_vram_mb":0,"model":null,"gpu_indices":[],"state":"running","gpu_util_source":"none"}],` +
		`"node":{"cpu_pct":1.5,"ram_used_mb":100,"ram_total_mb":1000,"gpus":[]}}`
	if err := telemetryWireErr(good); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"int cpu":      strings.Replace(good, `"cpu_pct":0.0`, `"cpu_pct":0`, 1),
		"float rss":    strings.Replace(good, `"rss_mb":1`, `"rss_mb":1.5`, 1),
		"null vram":    strings.Replace(good, `"vram_mb":0`, `"vram_mb":null`, 1),
		"Z timestamp":  strings.Replace(good, `+00:00`, `Z`, 1),
		"renamed":      strings.Replace(good, `"uptime_s"`, `"uptime"`, 1),
		"null list":    strings.Replace(good, `"workers":[{`, `"workers":null,"x":[{`, 1),
		"hive id":      strings.Replace(good, `"hive_id":"h"`, `"hive_id":"g"`, 1),
		"null gpus":    strings.Replace(good, `"gpus":[]`, `"gpus":null`, 1),
		"int node cpu": strings.Replace(good, `"cpu_pct":1.5`, `"cpu_pct":1`, 1),
	} {
		if telemetryWireErr(bad) == nil {
			t.Errorf("%s: drift not detected", name)
		}
	}
}

func mustRegexp(s string) *regexp.Regexp { return regexp.MustCompile(s) }
