// Package workerproc says which processes are LLM workers and what of a
// worker's command line may be shown. The collector and the jobs module
// both use it, so "a worker" means the same thing to both.
package workerproc

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// DefaultPattern matches the executable names of rbee workers
// (llm-worker-rbee-cpu, worker-rbee-cuda, ...).
const DefaultPattern = `^(llm-worker|worker-rbee)`

// What a pattern is matched against.
const (
	// OnExe matches the executable's base name (argv[0]): a pager or an
	// editor that merely has "llm-worker" in an argument is not a worker.
	OnExe = "exe"
	// OnCmdline matches the whole command line, for workers started
	// through an interpreter (python -m ...). Broader: document it.
	OnCmdline = "cmdline"
)

// Matcher recognises worker processes. A nil *Matcher matches nothing:
// that is what an empty pattern means everywhere.
type Matcher struct {
	re *regexp.Regexp
	on string
}

// NewMatcher compiles pattern, matched on OnExe or OnCmdline. An empty
// pattern returns nil, nil: matching is off.
func NewMatcher(pattern, on string) (*Matcher, error) {
	if pattern == "" {
		return nil, nil
	}
	if on == "" {
		on = OnExe
	}
	if on != OnExe && on != OnCmdline {
		return nil, fmt.Errorf("worker match on %q: want %s or %s", on, OnExe, OnCmdline)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("worker match %q: %w", pattern, err)
	}
	return &Matcher{re: re, on: on}, nil
}

// Match reports whether a process with these arguments is a worker.
func (m *Matcher) Match(args []string) bool {
	if m == nil || len(args) == 0 {
		return false
	}
	if m.on == OnCmdline {
		return m.re.MatchString(strings.Join(args, " "))
	}
	return m.re.MatchString(Exe(args))
}

// String is the pattern and what it applies to, for logs.
func (m *Matcher) String() string {
	if m == nil {
		return "off"
	}
	return m.re.String() + " on " + m.on
}

// Exe is the base name of argv[0]. Kernel threads and some launchers put
// arguments in argv[0]; only its first word counts.
func Exe(args []string) string {
	if len(args) == 0 {
		return ""
	}
	a0, _, _ := strings.Cut(args[0], " ")
	return filepath.Base(a0)
}

// shownFlags are the worker flags that may be shown to API clients. Other
// arguments can hold secrets (tokens, passwords) and never leave the hive.
var shownFlags = []string{"worker-id", "model", "device", "port"}

// Describe is a worker's command line as it may be shown: the executable
// name and the documented worker flags, nothing else.
func Describe(args []string) string {
	parts := []string{Exe(args)}
	for _, f := range shownFlags {
		if v, ok := Arg(args, f); ok {
			parts = append(parts, "--"+f, v)
		}
	}
	return strings.Join(parts, " ")
}

// ParseMatch splits a worker-match setting into the pattern and what it
// applies to: "cmdline:RE" the whole command line, "exe:RE" or "RE"
// argv[0]'s base name.
func ParseMatch(v string) (pattern, on string) {
	if p, ok := strings.CutPrefix(v, OnCmdline+":"); ok {
		return p, OnCmdline
	}
	if p, ok := strings.CutPrefix(v, OnExe+":"); ok {
		return p, OnExe
	}
	return v, OnExe
}
