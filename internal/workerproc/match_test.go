package workerproc

import "testing"

func TestMatcherOnExe(t *testing.T) {
	m, err := NewMatcher(DefaultPattern, OnExe)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"/opt/rbee/llm-worker-rbee-cpu", "--model", "m"}, true},
		{[]string{"worker-rbee-cuda"}, true},
		// The attack of issue 8: a pager on a file named after workers.
		{[]string{"less", "/home/ops/llm-worker-notes.txt"}, false},
		{[]string{"/usr/bin/perl", "-e", "sleep", "llm-worker"}, false},
		{nil, false},
	} {
		if got := m.Match(tc.args); got != tc.want {
			t.Errorf("Match(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestMatcherOnCmdlineAndOff(t *testing.T) {
	m, err := NewMatcher("vllm", OnCmdline)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Match([]string{"python3", "-m", "vllm.entrypoints.api_server"}) {
		t.Error("cmdline match missed an interpreter-started worker")
	}
	off, err := NewMatcher("", OnExe)
	if err != nil || off != nil {
		t.Fatalf("empty pattern: %v, %v; want nil, nil", off, err)
	}
	if off.Match([]string{"llm-worker-rbee-cpu"}) || off.String() != "off" {
		t.Error("an empty pattern must match nothing")
	}
	if _, err := NewMatcher("(", OnExe); err == nil {
		t.Error("bad regexp accepted")
	}
	if _, err := NewMatcher("x", "pid"); err == nil {
		t.Error("bad field accepted")
	}
}

func TestDescribeShowsOnlyWorkerFlags(t *testing.T) {
	got := Describe([]string{"/bin/llm-worker-rbee-cpu", "--db-password=hunter2", "--model", "tiny", "--port=9001", "--token", "s3cret"})
	if want := "llm-worker-rbee-cpu --model tiny --port 9001"; got != want {
		t.Fatalf("Describe = %q, want %q", got, want)
	}
}
