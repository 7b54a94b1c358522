package settings

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Name    string
	Port    int
	Tick    time.Duration
	Origins []string
	Secret  string
	Knob    bool
}

func testSet(c *testConfig) *Set {
	*c = testConfig{Name: "hive", Port: 7835, Tick: time.Second, Origins: []string{"*"}}
	s := New("hive")
	s.Declare("", "Top")
	s.Declare("http", "HTTP")
	top := s.Group("")
	top.String(&c.Name, "name", "name", "the name", Reloadable)
	h := s.Group("http")
	h.Int(&c.Port, "port", "port", "the port")
	h.List(&c.Origins, "origins", "cors-origins", "origins", Reloadable)
	h.String(&c.Secret, "hub", "hub", "a URL with a password", Masked(MaskURLPasswords))
	s.Group("workers").Duration(&c.Tick, "tick", "tick", "the tick", FileOnly)
	s.Group("workers").Bool(&c.Knob, "knob", "knob", "a knob", FileOnly)
	s.Former("old-knob", func(s *Set, v string) (string, error) { return "workers.knob", s.Set("knob", v) })
	return s
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadPrecedenceAndSources(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("name: file\nhttp:\n  port: 1\n  cors-origins: [a, b]\nworkers:\n  tick: 2s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var c testConfig
	s := testSet(&c)
	given, err := s.Parse([]string{"--port", "3"})
	if err != nil {
		t.Fatal(err)
	}
	src, err := s.Load(file, env(map[string]string{"HIVE_PORT": "2", "HIVE_NAME": "env"}), given, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 3 || c.Name != "env" || c.Tick != 2*time.Second || strings.Join(c.Origins, "|") != "a|b" {
		t.Fatalf("got %+v", c)
	}
	want := map[string]string{"port": "command line --port", "name": "environment HIVE_NAME", "tick": "file " + file, "origins": "file " + file}
	for k, v := range want {
		if src[k] != v {
			t.Errorf("source of %s = %q, want %q", k, src[k], v)
		}
	}
}

func TestFileOnlyAndUnknown(t *testing.T) {
	var c testConfig
	s := testSet(&c)
	if _, err := s.Parse([]string{"--tick", "3s"}); err == nil || !strings.Contains(err.Error(), "workers.tick") || !strings.Contains(err.Error(), "HIVE_TICK") {
		t.Errorf("a file-only setting on the command line: %v", err)
	}
	file := filepath.Join(t.TempDir(), "c.yaml")
	_ = os.WriteFile(file, []byte("http:\n  nope: 1\n"), 0o644)
	s = testSet(&c)
	if _, err := s.Load(file, env(nil), nil, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), `unknown setting "http.nope"`) {
		t.Errorf("an unknown key: %v", err)
	}
	s = testSet(&c)
	given, _ := s.Parse(nil)
	if _, err := s.Load("", env(map[string]string{"HIVE_PORT": "x"}), given, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "want a whole number") {
		t.Errorf("a bad environment value: %v", err)
	}
}

// The old flat layout (flag names at the top, and formers) loads with one
// warning naming each key's new place.
func TestFlatFileAndFormers(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	_ = os.WriteFile(file, []byte("port: 9\nold-knob: true\n"), 0o644)
	var c testConfig
	s := testSet(&c)
	var warn bytes.Buffer
	if _, err := s.Load(file, env(nil), nil, &warn); err != nil {
		t.Fatal(err)
	}
	if c.Port != 9 || !c.Knob {
		t.Fatalf("got %+v", c)
	}
	for _, w := range []string{"port -> http.port", "old-knob -> workers.knob"} {
		if !strings.Contains(warn.String(), w) {
			t.Errorf("warning %q lacks %q", warn.String(), w)
		}
	}
}

func TestUsageAndPrint(t *testing.T) {
	var c testConfig
	s := testSet(&c)
	c.Secret = "nats-leaf://u:pw@hub:7422"
	var u, p bytes.Buffer
	s.Usage(&u)
	for _, want := range []string{"\nTop:\n  --name\n", "\nHTTP:\n  --port\n        the port (default \"7835\")", "workers.tick (HIVE_TICK): the tick"} {
		if !strings.Contains(u.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, u.String())
		}
	}
	s.Print(&p, Sources{"port": "command line --port"})
	for _, want := range []string{"name: \"hive\" # default\n", "http:\n  port: \"7835\" # command line --port\n", `  hub: "nats-leaf://u:xxxxx@hub:7422"`} {
		if !strings.Contains(p.String(), want) {
			t.Errorf("print lacks %q:\n%s", want, p.String())
		}
	}
	if strings.Contains(p.String(), "pw@") {
		t.Errorf("print shows the password:\n%s", p.String())
	}
}

// Apply applies what changed where a setting is reloadable and has an
// applier, keeps next's value, and names the rest as needing a restart.
func TestApply(t *testing.T) {
	var cur, next testConfig
	a, b := testSet(&cur), testSet(&next)
	next.Name, next.Port, next.Origins = "new", 1, []string{"x"}
	var got []string
	applied, refused, restart := a.Apply(b, map[string]func() error{
		"name":    func() error { got = append(got, "name"); return nil },
		"origins": func() error { return os.ErrInvalid },
	}, func(string, error) {})
	if strings.Join(applied, ",") != "name" || strings.Join(refused, ",") != "origins" || strings.Join(restart, ",") != "port" {
		t.Fatalf("applied %v refused %v restart %v", applied, refused, restart)
	}
	if cur.Name != "new" || cur.Port != 7835 || strings.Join(cur.Origins, ",") != "*" {
		t.Fatalf("kept %+v", cur)
	}
}

func TestMaskURLPasswords(t *testing.T) {
	got := MaskURLPasswords("nats-leaf://hive:s3cret@a:7422, nats-leaf://hive:s3cret@b:7422")
	if strings.Contains(got, "s3cret") || strings.Count(got, "xxxxx") != 2 {
		t.Fatalf("MaskURLPasswords = %q", got)
	}
}
