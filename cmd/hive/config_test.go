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

	"github.com/rbee/hive/modules/gateway"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "hive.yaml")
	if err := os.WriteFile(file, []byte("hive-id: from-file\nhttp:\n  port: 1111\nqueen:\n  url: http://file:7833\nworkers:\n  telemetry-interval: 2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig([]string{"--config", file, "--port", "3333"},
		env(map[string]string{"HIVE_PORT": "2222", "HIVE_HIVE_ID": "from-env", "HIVE_QUEEN_URL": ""}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 3333 || c.HiveID != "from-env" || c.Queen.QueenURL != "" || c.Workers.Interval != 2*time.Second {
		t.Fatalf("got port=%d id=%q queen=%q interval=%v", c.Port, c.HiveID, c.Queen.QueenURL, c.Workers.Interval)
	}
	// The file may also be named by the environment.
	c, err = loadConfig(nil, env(map[string]string{"HIVE_CONFIG": file}), io.Discard)
	if err != nil || c.HiveID != "from-file" || c.Port != 1111 {
		t.Fatalf("HIVE_CONFIG: %v %+v", err, c)
	}
}

// The example file documents the defaults; it must load and equal them.
func TestExampleConfigIsTheDefaults(t *testing.T) {
	def, err := loadConfig(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var warned bytes.Buffer
	ex, err := loadConfig([]string{"--config", "../../configs/hive.yaml"}, env(nil), &warned)
	if err != nil {
		t.Fatal(err)
	}
	if warned.Len() > 0 {
		t.Errorf("the example file is not in the current layout: %s", warned.String())
	}
	ex.ConfigFile = ""
	ex.sources, def.sources = nil, nil // where they came from differs, by design
	ex.set, def.set = nil, nil
	if !reflect.DeepEqual(def, ex) {
		t.Fatalf("configs/hive.yaml differs from the defaults:\n%+v\n%+v", def, ex)
	}
	// And it names every setting, in its group.
	b, _ := os.ReadFile("../../configs/hive.yaml")
	for _, g := range newSettings(new(config)).Groups() {
		indent := ""
		if g.Name != "" {
			indent = "  "
			if !strings.Contains(string(b), "\n"+g.Name+":\n") {
				t.Errorf("configs/hive.yaml lacks the group %s", g.Name)
			}
		}
		for _, st := range g.Settings() {
			if !strings.Contains(string(b), "\n"+indent+st.Key+":") {
				t.Errorf("configs/hive.yaml lacks %s", st.Path())
			}
		}
	}
}

// Every flag is a setting with a place of its own in the file, or one of
// the command flags.
func TestEverySettingIsLaidOut(t *testing.T) {
	set := newSettings(new(config))
	paths := map[string]string{}
	for _, st := range set.All() {
		if other, dup := paths[st.Path()]; dup {
			t.Errorf("--%s and --%s share %s", st.Flag, other, st.Path())
		}
		paths[st.Path()] = st.Flag
	}
	set.FlagSet().VisitAll(func(f *flag.Flag) {
		if _, ok := set.Lookup(f.Name); !ok && f.Name != "config" && f.Name != "version" {
			t.Errorf("--%s is neither a setting nor a command flag", f.Name)
		}
	})
}

// Every setting declared reloadable is applied by a reload, and a reload
// applies no other.
func TestEveryReloadableIsApplied(t *testing.T) {
	apply := appliers(new(config), new(config), &live{})
	for _, st := range newSettings(new(config)).All() {
		if _, ok := apply[st.Flag]; ok != st.Reload {
			t.Errorf("--%s: reloadable %v, applied by a reload %v", st.Flag, st.Reload, ok)
		}
	}
}

// An old flat file (flag-name: value, with the settings since folded into
// others) loads as it meant, with one warning naming the new keys.
func TestOldFlatFileLoadsWithAWarning(t *testing.T) {
	file := filepath.Join(t.TempDir(), "old.yaml")
	old := "port: 1111\nqueen-url: http://old:7833\nauth-read: false\nadvertise-host: 10.0.0.9\n" +
		"gpu-util: device\nworker-match: llm\nworker-match-on: cmdline\nnats-max-conns: 9\nmax-retained-jobs: 7\n"
	if err := os.WriteFile(file, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	var warned bytes.Buffer
	c, err := loadConfig([]string{"--config", file}, env(nil), &warned)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 1111 || c.Queen.QueenURL != "http://old:7833" || c.HTTP.Access != gateway.AccessOpenReads ||
		c.Queen.AdvertiseHost != "10.0.0.9" || c.GPUSource != "smi-device" || c.WorkerMatch != "cmdline:llm" ||
		c.NATS.Observers.MaxConns != 9 || c.Jobs.MaxRetained != 7 {
		t.Fatalf("old file read as %+v", c)
	}
	w := warned.String()
	if strings.Count(w, "\n") != 1 || !strings.Contains(w, "old flat layout") {
		t.Fatalf("want one warning line, got %q", w)
	}
	for _, want := range []string{"port -> http.port", "queen-url -> queen.url", "auth-read -> http.access", "advertise-host -> queen.advertise-url",
		"gpu-util -> workers.gpu-source", "worker-match-on -> workers.match", "nats-max-conns -> limits.nats-max-conns"} {
		if !strings.Contains(w, want) {
			t.Errorf("warning lacks %q: %s", want, w)
		}
	}
	// allow-unauthenticated becomes --access open.
	_ = os.WriteFile(file, []byte("allow-unauthenticated: true\n"), 0o644)
	if c, err = loadConfig([]string{"--config", file}, env(nil), io.Discard); err != nil || c.HTTP.Access != gateway.AccessOpen {
		t.Fatalf("allow-unauthenticated: %v %+v", err, c)
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
		"unknown file key":    {args: []string{"--config", write("a.yaml", "prot: 1\n")}, want: `unknown setting "prot"`},
		"unknown group key":   {args: []string{"--config", write("a2.yaml", "http:\n  prot: 1\n")}, want: `unknown setting "http.prot"`},
		"group not a map":     {args: []string{"--config", write("a3.yaml", "http: 1\n")}, want: "want a group"},
		"bad file value":      {args: []string{"--config", write("b.yaml", "http:\n  port: many\n")}, want: "http.port"},
		"nested value":        {args: []string{"--config", write("c.yaml", "hive-id: {a: 1}\n")}, want: "scalar"},
		"not yaml":            {args: []string{"--config", write("d.yaml", "port: [\n")}, want: "d.yaml"},
		"missing file":        {args: []string{"--config", filepath.Join(dir, "nope.yaml")}, want: "no such file"},
		"bad env":             {env: map[string]string{"HIVE_TELEMETRY_INTERVAL": "soon"}, want: "HIVE_TELEMETRY_INTERVAL"},
		"range":               {args: []string{"--port", "-1"}, want: "out of range"},
		"empty id":            {args: []string{"--hive-id", " "}, want: "hive-id"},
		"queen api":           {args: []string{"--queen-api", "pull"}, want: `unknown API "pull"`},
		"bad regexp":          {args: []string{"--worker-match", "(["}, want: "worker match"},
		"interval":            {args: []string{"--telemetry-interval", "1ms"}, want: "interval 1ms too short"},
		"short token":         {env: map[string]string{"HIVE_API_TOKEN": "short"}, want: "API token shorter"},
		"queen not allowed":   {args: []string{"--queen-allow", "10.0.0.0/8"}, want: "not in the allowed hosts"},
		"gpu source":          {args: []string{"--gpu-source", "bogus"}, want: "--gpu-source"},
		"access":              {args: []string{"--access", "everyone"}, want: "want token, open-reads or open"},
		"open with token":     {args: []string{"--access", "open"}, env: map[string]string{"HIVE_API_TOKEN": strings.Repeat("t", 32)}, want: "guard nothing"},
		"file-only as flag":   {args: []string{"--http-body-timeout", "1s"}, want: "HIVE_HTTP_BODY_TIMEOUT"},
		"old flag":            {args: []string{"--gpu-util", "device"}, want: "gpu-util"},
		"hub hive id":         {args: []string{"--hive-id", "a b", "--nats-hub", "nats-leaf://127.0.0.1:7422"}, want: "--hive-id"},
		"positional":          {args: []string{"extra"}, want: "unexpected arguments"},
		"bad worker match on": {args: []string{"--config", write("e.yaml", "worker-match-on: argv\n")}, want: "want exe or cmdline"},
	}
	for name, tc := range cases {
		_, err := loadConfig(tc.args, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one containing %q", name, err, tc.want)
		}
	}
	// A file-only setting works from the environment.
	c, err := loadConfig(nil, env(map[string]string{"HIVE_HTTP_BODY_TIMEOUT": "2s"}), io.Discard)
	if err != nil || c.HTTP.BodyTimeout != 2*time.Second {
		t.Fatalf("HIVE_HTTP_BODY_TIMEOUT: %v %+v", err, c)
	}
}

func TestConfigCommandMasksSecrets(t *testing.T) {
	var out bytes.Buffer
	t.Setenv("HIVE_NATS_HUB", "nats-leaf://u:secret@hub:7422")
	code := run([]string{"config"}, &out, io.Discard)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	s := out.String()
	if strings.Contains(s, "secret") || !strings.Contains(s, "\nnats:\n") || !strings.Contains(s, `  hub: "nats-leaf://u:xxxxx@hub:7422"`) ||
		!strings.Contains(s, "\nhttp:\n  port: \"7835\"") {
		t.Fatalf("hive config:\n%s", s)
	}
}

// hive --help exits 0, names the subcommands and groups the flags.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "help"} {
		var out bytes.Buffer
		if code := run([]string{arg}, &out, io.Discard); code != 0 {
			t.Fatalf("%s: exit %d", arg, code)
		}
		s := out.String()
		for _, want := range []string{"hive config", "hive healthcheck", "hive watch", "\nHTTP and access:\n", "\nQueen:\n",
			"\nNATS and hub:\n", "\nWorkers and GPUs:\n", "\nJobs:\n", "\nLimits:\n", "--queen-url", "--version", "limits.http-body-timeout"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s lacks %q", arg, want)
			}
		}
		if n := strings.Count(s, "\n  --") - 2; n != flagCount() { // less --config and --version
			t.Errorf("%s lists %d settings, the table %d", arg, n, flagCount())
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"--version"}, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "hive "+version+" (commit ") || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("--version: exit %d, %q", code, out.String())
	}
}

// A password on the command line is readable by every user of the host
// (ps, /proc/<pid>/cmdline): the hub URL with one is refused there and
// taken from the environment or the file.
func TestHubPasswordNotOnTheCommandLine(t *testing.T) {
	_, err := loadConfig([]string{"--nats-hub", "nats-leaf://hive:pw@hub-1:7422,nats-leaf://hive:pw@hub-2:7422"}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "HIVE_NATS_HUB") {
		t.Fatalf("--nats-hub with a password: %v", err)
	}
	if _, err := loadConfig([]string{"--nats-hub", "nats-leaf://hub-1:7422"}, env(nil), io.Discard); err != nil {
		t.Fatalf("--nats-hub without one: %v", err)
	}
	if c, err := loadConfig(nil, env(map[string]string{"HIVE_NATS_HUB": "nats-leaf://hive:pw@hub-1:7422"}), io.Discard); err != nil || c.NATS.Hub == "" {
		t.Fatalf("HIVE_NATS_HUB: %v", err)
	}
}

// The command line stays small: at most 32 flags outside the TLS group,
// and there only the HTTPS listener's certificate, key and client CA (the
// rest are file or environment settings, as exporter-toolkit keeps TLS
// in its web config file).
func TestFlagBudget(t *testing.T) {
	n := 0
	for _, st := range newSettings(new(config)).All() {
		switch {
		case st.FileOnly:
		case st.Group != "tls":
			n++
		case st.Flag != "tls-cert-file" && st.Flag != "tls-key-file" && st.Flag != "tls-client-ca-file":
			t.Errorf("--%s is a TLS flag on the command line", st.Flag)
		}
	}
	if n > 32 {
		t.Errorf("%d flags outside the TLS group", n)
	}
}

func flagCount() int {
	n := 0
	for _, st := range newSettings(new(config)).All() {
		if !st.FileOnly {
			n++
		}
	}
	return n
}
