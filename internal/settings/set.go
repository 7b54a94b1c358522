package settings

import (
	"flag"
	"io"
)

// Former translates a setting that was folded into another, as an old
// flat file may still name it: it sets the successor from v and names
// its path.
type Former func(s *Set, v string) (successor string, err error)

// Set is every setting of one binary, in its groups' order, and the
// command flags that select what the binary does rather than configure
// it (they have no key and `hive config` does not print them).
type Set struct {
	fs       *flag.FlagSet
	groups   []*Group
	byFlag   map[string]*Setting
	formers  map[string]Former
	commands []string
}

// New returns an empty set for the binary name.
func New(name string) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &Set{fs: fs, byFlag: map[string]*Setting{}, formers: map[string]Former{}}
}

// value returns the flag.Value that bind defines on a flag set of its
// own: the flag package's own values, so that parse errors read as its.
func (s *Set) value(bind func(*flag.FlagSet)) flag.Value {
	scratch := flag.NewFlagSet("", flag.ContinueOnError)
	bind(scratch)
	return scratch.Lookup("v").Value
}

// Declare declares a group with its --help title; groups keep the order
// of their declaration, so the binary declares them before any module
// adds to them.
func (s *Set) Declare(name, title string) *Group {
	g := s.Group(name)
	g.Title = title
	return g
}

// Group returns the group name, declaring it (titled by its name) if no
// one has.
func (s *Set) Group(name string) *Group {
	for _, g := range s.groups {
		if g.Name == name {
			return g
		}
	}
	g := &Group{Name: name, Title: name, set: s}
	s.groups = append(s.groups, g)
	return g
}

// Groups are the set's groups in order.
func (s *Set) Groups() []*Group { return s.groups }

// Lookup finds a setting by its flag name.
func (s *Set) Lookup(flagName string) (*Setting, bool) {
	st, ok := s.byFlag[flagName]
	return st, ok
}

// All are every setting, group by group.
func (s *Set) All() []*Setting {
	var out []*Setting
	for _, g := range s.groups {
		out = append(out, g.settings...)
	}
	return out
}

// Command declares a command flag: bind defines it on the flag set.
func (s *Set) Command(name string, bind func(fs *flag.FlagSet)) {
	bind(s.fs)
	s.commands = append(s.commands, name)
}

// Former declares an old setting folded into another, for old files.
func (s *Set) Former(name string, f Former) { s.formers[name] = f }

// Set sets a setting (or command flag) from its command-line form.
func (s *Set) Set(flagName, v string) error { return s.fs.Set(flagName, v) }

// FlagSet is the command line the set parses.
func (s *Set) FlagSet() *flag.FlagSet { return s.fs }
