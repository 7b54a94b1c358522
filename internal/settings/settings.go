// Package settings declares each of the hive's settings once, where its
// value lives, as dskit's and Loki's RegisterFlags do: its flag, its key
// in a YAML group, its environment variable, its default (the value bound
// when it is declared), its help, and whether it is file-only, applied by
// a reload or secret. The command line, the config file, the environment,
// --help, `hive config`, the old flat file's translation and what a
// reload may change all come from that one declaration.
//
// A module declares its own in a RegisterSettings method of its Config;
// cmd/hive names the groups, in order, and calls each module's.
package settings

import (
	"flag"
	"strings"
	"time"
)

// Setting is one declared setting.
type Setting struct {
	Flag  string // the command-line flag; the environment has HIVE_<FLAG>
	Group string // the YAML group; "" is the file's top level
	Key   string // the key within the group
	Help  string
	// FileOnly settings are tuning knobs set in the file or the
	// environment only, which keeps the command line short.
	FileOnly bool
	// Reload says a SIGHUP applies a change without a restart.
	Reload bool
	// Mask, where set, hides a secret part of the value in `hive config`.
	Mask func(string) string

	value flag.Value
	def   string
}

// Option qualifies a declaration.
type Option func(*Setting)

// FileOnly keeps a setting off the command line.
func FileOnly(s *Setting) { s.FileOnly = true }

// Reloadable marks a setting a reload applies.
func Reloadable(s *Setting) { s.Reload = true }

// Masked hides a secret part of the value in `hive config`.
func Masked(mask func(string) string) Option { return func(s *Setting) { s.Mask = mask } }

// Path is where the setting sits in the file: "queen.url".
func (s *Setting) Path() string {
	if s.Group == "" {
		return s.Key
	}
	return s.Group + "." + s.Key
}

// Env is the setting's environment variable.
func (s *Setting) Env() string { return EnvName(s.Flag) }

// Value is the setting's current value, as the command line writes it.
func (s *Setting) Value() string { return s.value.String() }

// Default is the value the setting had when it was declared.
func (s *Setting) Default() string { return s.def }

// EnvName maps a flag name to its environment variable: HIVE_<FLAG>,
// upper case, '-' as '_'.
func EnvName(flagName string) string {
	return "HIVE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Group is one section of the settings: a YAML group of the file and a
// heading of --help.
type Group struct {
	Name, Title string
	settings    []*Setting
	set         *Set
}

// Settings are the group's, in the order they were declared.
func (g *Group) Settings() []*Setting { return g.settings }

// Var declares a setting whose value is v; its default is v's value now.
func (g *Group) Var(v flag.Value, flagName, key, help string, opts ...Option) {
	g.set.fs.Var(v, flagName, help)
	s := &Setting{Flag: flagName, Group: g.Name, Key: key, Help: help, value: v, def: v.String()}
	for _, o := range opts {
		o(s)
	}
	if _, dup := g.set.byFlag[flagName]; dup {
		panic("settings: " + flagName + " declared twice")
	}
	g.set.byFlag[flagName] = s
	g.settings = append(g.settings, s)
}

// String declares a string setting bound to p, its default *p.
func (g *Group) String(p *string, flagName, key, help string, opts ...Option) {
	g.Var(g.set.value(func(fs *flag.FlagSet) { fs.StringVar(p, "v", *p, "") }), flagName, key, help, opts...)
}

// Bool declares a boolean setting bound to p, its default *p.
func (g *Group) Bool(p *bool, flagName, key, help string, opts ...Option) {
	g.Var(g.set.value(func(fs *flag.FlagSet) { fs.BoolVar(p, "v", *p, "") }), flagName, key, help, opts...)
}

// Int declares an int setting bound to p, its default *p.
func (g *Group) Int(p *int, flagName, key, help string, opts ...Option) {
	g.Var(g.set.value(func(fs *flag.FlagSet) { fs.IntVar(p, "v", *p, "") }), flagName, key, help, opts...)
}

// Int64 declares an int64 setting bound to p, its default *p.
func (g *Group) Int64(p *int64, flagName, key, help string, opts ...Option) {
	g.Var(g.set.value(func(fs *flag.FlagSet) { fs.Int64Var(p, "v", *p, "") }), flagName, key, help, opts...)
}

// Uint64 declares a uint64 setting bound to p, its default *p.
func (g *Group) Uint64(p *uint64, flagName, key, help string, opts ...Option) {
	g.Var(g.set.value(func(fs *flag.FlagSet) { fs.Uint64Var(p, "v", *p, "") }), flagName, key, help, opts...)
}

// Duration declares a duration setting bound to p, its default *p.
func (g *Group) Duration(p *time.Duration, flagName, key, help string, opts ...Option) {
	g.Var(g.set.value(func(fs *flag.FlagSet) { fs.DurationVar(p, "v", *p, "") }), flagName, key, help, opts...)
}

// List declares a comma-separated list bound to p, its default *p. Set
// to "" it is empty: non-nil where it held a list (for a list whose nil
// means "the default", as the gateway's CORS origins), nil where it was
// nil.
func (g *Group) List(p *[]string, flagName, key, help string, opts ...Option) {
	g.Var((*list)(p), flagName, key, help, opts...)
}

type list []string

func (l *list) String() string { return strings.Join(*l, ",") }

func (l *list) Set(v string) error {
	if *l == nil && strings.TrimSpace(v) == "" {
		return nil
	}
	out := []string{}
	for _, o := range strings.Split(v, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	*l = out
	return nil
}
