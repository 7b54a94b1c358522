package settings

import (
	"fmt"
	"io"
	"slices"
	"strconv"
)

// Usage writes the settings as --help shows them: a heading per group
// with its command-line flags, the command flags under "Other:", then
// the file-only settings with their paths and variables.
func (s *Set) Usage(w io.Writer) {
	line := func(name string) {
		f := s.fs.Lookup(name)
		def := ""
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
			def = " (default " + strconv.Quote(f.DefValue) + ")"
		}
		fmt.Fprintf(w, "  --%s\n        %s%s\n", name, f.Usage, def)
	}
	var fileOnly []string
	for _, g := range s.groups {
		fmt.Fprintf(w, "\n%s:\n", g.Title)
		for _, st := range g.settings {
			if st.FileOnly {
				fileOnly = append(fileOnly, st.Path()+" ("+st.Env()+"): "+st.Help)
				continue
			}
			line(st.Flag)
		}
	}
	fmt.Fprintln(w, "\nOther:")
	for _, c := range s.commands {
		line(c)
	}
	fmt.Fprintln(w, "\nIn the file or the environment only:")
	for _, l := range fileOnly {
		fmt.Fprintf(w, "  %s\n", l)
	}
}

// Print writes the current values as YAML in the file's groups, secrets
// masked, each with where it came from.
func (s *Set) Print(w io.Writer, src Sources) {
	for _, g := range s.groups {
		indent := ""
		if g.Name != "" {
			fmt.Fprintf(w, "%s:\n", g.Name)
			indent = "  "
		}
		for _, st := range g.settings {
			v := st.Value()
			if st.Mask != nil {
				v = st.Mask(v)
			}
			from := src[st.Flag]
			if from == "" {
				from = "default"
			}
			fmt.Fprintf(w, "%s%s: %q # %s\n", indent, st.Key, v, from)
		}
	}
}

// Changed are the settings whose values differ between s and next, two
// sets of the same declarations, split into those a reload applies and
// those that need a restart.
func (s *Set) Changed(next *Set) (reload, restart []*Setting) {
	for _, st := range s.All() {
		n, ok := next.byFlag[st.Flag]
		if !ok || n.Value() == st.Value() {
			continue
		}
		if st.Reload {
			reload = append(reload, st)
		} else {
			restart = append(restart, st)
		}
	}
	return reload, restart
}

// Apply takes next's values for the settings that changed: where a
// setting is Reloadable and apply has a function for it, that function
// applies it (to a running binary) and s keeps next's value; a function
// that fails is refused and reported to refusedBy. What else changed
// needs a restart. Each list holds flag names, sorted.
func (s *Set) Apply(next *Set, apply map[string]func() error, refusedBy func(flag string, err error)) (applied, refused, restart []string) {
	live, rest := s.Changed(next)
	for _, st := range live {
		fn, ok := apply[st.Flag]
		if !ok {
			rest = append(rest, st)
			continue
		}
		if err := fn(); err != nil {
			refusedBy(st.Flag, err)
			refused = append(refused, st.Flag)
			continue
		}
		if err := s.Set(st.Flag, next.byFlag[st.Flag].Value()); err != nil {
			refusedBy(st.Flag, err)
			refused = append(refused, st.Flag)
			continue
		}
		applied = append(applied, st.Flag)
	}
	for _, st := range rest {
		restart = append(restart, st.Flag)
	}
	slices.Sort(restart)
	return applied, refused, restart
}
