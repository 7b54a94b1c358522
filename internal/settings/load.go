package settings

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Sources says where each setting came from, by flag name: "file F",
// "environment HIVE_X", "command line --x". A setting not in it has its
// default.
type Sources map[string]string

// Given is the command line as parsed: the flags given and their values,
// to be set again over the file and the environment.
type Given []Arg

// Arg is one flag given on the command line.
type Arg struct{ Name, Value string }

// Parse reads the command line. A file-only setting given there is an
// error naming where it goes instead; so is a positional argument.
func (s *Set) Parse(args []string) (Given, error) {
	if err := s.fs.Parse(args); err != nil {
		return nil, err
	}
	if s.fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", s.fs.Args())
	}
	var given Given
	var errs []error
	s.fs.Visit(func(f *flag.Flag) {
		given = append(given, Arg{f.Name, f.Value.String()})
		if st, ok := s.byFlag[f.Name]; ok && st.FileOnly {
			errs = append(errs, fmt.Errorf("--%s is set in the file (%s) or the environment (%s), not on the command line", f.Name, st.Path(), st.Env()))
		}
	})
	return given, errors.Join(errs...)
}

// Load sets, each over the one before, the file (if named), the
// environment and the command line given, and says where each came
// from. A set-but-empty variable counts: HIVE_QUEEN_URL="" selects
// standalone as --queen-url "" does. Warnings (an old flat file) go to
// warn.
func (s *Set) Load(file string, lookupEnv func(string) (string, bool), given Given, warn io.Writer) (Sources, error) {
	src := Sources{}
	if file != "" {
		set, err := s.applyFile(file, warn)
		if err != nil {
			return nil, err
		}
		for _, name := range set {
			src[name] = "file " + file
		}
	}
	var errs []error
	for _, st := range s.All() {
		v, ok := lookupEnv(st.Env())
		if !ok {
			continue
		}
		if err := s.fs.Set(st.Flag, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w (want %s)", st.Env(), v, err, want(s.fs.Lookup(st.Flag))))
		}
		src[st.Flag] = "environment " + st.Env()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, f := range given {
		if err := s.fs.Set(f.Name, f.Value); err != nil {
			return nil, err
		}
		if _, ok := s.byFlag[f.Name]; ok {
			src[f.Name] = "command line --" + f.Name
		}
	}
	return src, nil
}

// applyFile sets the settings of a YAML file: in their groups (the
// top-level group's at the top), or in the old flat layout (flag-name:
// value, and the formers), which still loads with one warning that names
// each key's new place. It returns the flags it set.
func (s *Set) applyFile(path string, warn io.Writer) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	f := &fileLoad{s: s, path: path, legacy: map[string]any{}}
	for _, top := range sortedKeys(raw) {
		if err := f.top(top, raw[top]); err != nil {
			return nil, err
		}
	}
	if err := f.formers(); err != nil {
		return nil, err
	}
	if len(f.flat) > 0 {
		fmt.Fprintf(warn, "hive: warning: config file %s has the old flat layout; it still loads, but move each key to its group: %s\n",
			path, strings.Join(f.flat, ", "))
	}
	return f.set, nil
}

// fileLoad is one file being applied.
type fileLoad struct {
	s      *Set
	path   string
	set    []string       // flags set
	flat   []string       // old keys and where they go now
	legacy map[string]any // formers, applied after the rest
}

func (f *fileLoad) apply(st *Setting, where string, v any) error {
	sv, err := scalar(v)
	if err == nil {
		err = f.s.fs.Set(st.Flag, sv)
	}
	if err != nil {
		return fmt.Errorf("config file %s: %s: %w", f.path, where, err)
	}
	f.set = append(f.set, st.Flag)
	return nil
}

// top applies one top-level key: a group, a top-level setting, an old
// flat key or a former.
func (f *fileLoad) top(key string, v any) error {
	for _, g := range f.s.groups {
		if g.Name == "" || g.Name != key {
			continue
		}
		sub, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("config file %s: %s: want a group of settings", f.path, key)
		}
		for _, name := range sortedKeys(sub) {
			st := g.key(name)
			if st == nil {
				return fmt.Errorf("config file %s: unknown setting %q", f.path, key+"."+name)
			}
			if err := f.apply(st, key+"."+name, sub[name]); err != nil {
				return err
			}
		}
		return nil
	}
	for _, g := range f.s.groups {
		if st := g.key(key); g.Name == "" && st != nil {
			return f.apply(st, key, v)
		}
	}
	if st, ok := f.s.byFlag[key]; ok {
		f.flat = append(f.flat, key+" -> "+st.Path())
		return f.apply(st, key, v)
	}
	if _, ok := f.s.formers[key]; ok {
		f.legacy[key] = v
		return nil
	}
	return fmt.Errorf("config file %s: unknown setting %q", f.path, key)
}

func (f *fileLoad) formers() error {
	for _, name := range sortedKeys(f.legacy) {
		sv, err := scalar(f.legacy[name])
		if err != nil {
			return fmt.Errorf("config file %s: %s: %w", f.path, name, err)
		}
		to, err := f.s.formers[name](f.s, sv)
		if err != nil {
			return fmt.Errorf("config file %s: %s: %w", f.path, name, err)
		}
		f.flat = append(f.flat, name+" -> "+to)
	}
	return nil
}

func (g *Group) key(k string) *Setting {
	for _, st := range g.settings {
		if st.Key == k {
			return st
		}
	}
	return nil
}

// scalar is a YAML value as a flag takes it; a list is comma-joined.
func scalar(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case map[string]any:
		return "", fmt.Errorf("want a scalar")
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			s, err := scalar(e)
			if err != nil || strings.Contains(s, ",") {
				return "", fmt.Errorf("want a list of plain values")
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return fmt.Sprint(v), nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
