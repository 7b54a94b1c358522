package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "hive.yaml")
	if err := os.WriteFile(file, []byte("port: 1111\nhive-id: from-file\nqueen-url: http://file:7833\ntelemetry-interval: 2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig([]string{"--config", file, "--port", "3333"},
		env(map[string]string{"HIVE_PORT": "2222", "HIVE_HIVE_ID": "from-env", "HIVE_QUEEN_URL": ""}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 3333 || c.HiveID != "from-env" || c.QueenURL != "" || c.TelemetryInterval != 2*time.Second {
		t.Fatalf("got port=%d id=%q queen=%q interval=%v", c.Port, c.HiveID, c.QueenURL, c.TelemetryInterval)
	}
	// The file may also be named by the environment.
	c, err = loadConfig(nil, env(map[string]string{"HIVE_CONFIG": file}), io.Discard)
	if err != nil || c.HiveID != "from-file" {
		t.Fatalf("HIVE_CONFIG: %v %+v", err, c)
	}
}

// The example file documents the defaults; it must load and equal them.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	def, err := loadConfig(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := loadConfig([]string{"--config", "../../configs/hive.yaml"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ex.ConfigFile = ""
	if !reflect.DeepEqual(def, ex) {
		t.Fatalf("configs/hive.yaml differs from the defaults:\n%+v\n%+v", def, ex)
	}
	// And it names every setting.
	b, _ := os.ReadFile("../../configs/hive.yaml")
	var missing []string
	newFlagSet(new(config)).VisitAll(func(f *flag.Flag) {
		if !commandFlags[f.Name] && !strings.Contains(string(b), "\n"+f.Name+":") {
			missing = append(missing, f.Name)
		}
	})
	if len(missing) > 0 {
		t.Fatalf("configs/hive.yaml lacks %v", missing)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		_ = os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	cases := map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"unknown file key":  {args: []string{"--config", write("a.yaml", "prot: 1\n")}, want: `unknown setting "prot"`},
		"bad file value":    {args: []string{"--config", write("b.yaml", "port: many\n")}, want: "port"},
		"nested value":      {args: []string{"--config", write("c.yaml", "port: {a: 1}\n")}, want: "scalar"},
		"not yaml":          {args: []string{"--config", write("d.yaml", "port: [\n")}, want: "d.yaml"},
		"missing file":      {args: []string{"--config", filepath.Join(dir, "nope.yaml")}, want: "no such file"},
		"bad env":           {env: map[string]string{"HIVE_TELEMETRY_INTERVAL": "soon"}, want: "HIVE_TELEMETRY_INTERVAL"},
		"range":             {args: []string{"--port", "-1"}, want: "out of range"},
		"empty id":          {args: []string{"--hive-id", " "}, want: "hive-id"},
		"queen api":         {args: []string{"--queen-api", "pull"}, want: `unknown API "pull"`},
		"bad regexp":        {args: []string{"--worker-match", "(["}, want: "worker match"},
		"interval":          {args: []string{"--telemetry-interval", "1ms"}, want: "interval 1ms too short"},
		"short token":       {env: map[string]string{"HIVE_API_TOKEN": "short"}, want: "API token shorter"},
		"queen not allowed": {args: []string{"--queen-allow", "10.0.0.0/8"}, want: "not in the allowed hosts"},
		"gpu source":        {args: []string{"--gpu-source", "nvml"}, want: "--gpu-source"},
		"gpu util":          {args: []string{"--gpu-util", "sm"}, want: "--gpu-util"},
		"hub hive id":       {args: []string{"--hive-id", "a b", "--nats-hub", "nats-leaf://127.0.0.1:7422"}, want: "--hive-id"},
		"positional":        {args: []string{"extra"}, want: "unexpected arguments"},
	}
	for name, tc := range cases {
		_, err := loadConfig(tc.args, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one containing %q", name, err, tc.want)
		}
	}
}

func TestPrintConfigMasksSecrets(t *testing.T) {
	var out bytes.Buffer
	code := run([]string{"--print-config", "--nats-hub", "nats-leaf://u:secret@hub:7422"}, &out, io.Discard)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	s := out.String()
	if strings.Contains(s, "secret") || !strings.Contains(s, `nats-hub: "nats-leaf://u:xxxxx@hub:7422"`) || !strings.Contains(s, `port: "7835"`) {
		t.Fatalf("print-config:\n%s", s)
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--version"}, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "hive "+version+" (commit ") || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("--version: exit %d, %q", code, out.String())
	}
}

func TestMaskURLList(t *testing.T) {
	got := maskURL("nats-leaf://hive:s3cret@a:7422, nats-leaf://hive:s3cret@b:7422")
	if strings.Contains(got, "s3cret") || strings.Count(got, "xxxxx") != 2 {
		t.Fatalf("maskURL = %q", got)
	}
}
