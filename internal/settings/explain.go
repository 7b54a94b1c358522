package settings

import (
	"flag"
	"fmt"
	"regexp"
)

// badValueRe and unknownRe take apart the flag package's parse errors.
var (
	badValueRe = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for flag -([A-Za-z0-9-]+): `)
	unknownRe  = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
)

// Explain says in one line what was wrong with the command line and
// what is wanted, where the flag package says "parse error" and prints
// every setting.
func (s *Set) Explain(err error) error {
	name := s.fs.Name()
	if m := badValueRe.FindStringSubmatch(err.Error()); m != nil {
		if f := s.fs.Lookup(m[2]); f != nil {
			return fmt.Errorf("--%s %q: want %s (%s --help lists every setting)", f.Name, m[1], want(f), name)
		}
	}
	if m := unknownRe.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("unknown flag --%s (%s --help lists every setting)", m[1], name)
	}
	return fmt.Errorf("%w (%s --help lists every setting)", err, name)
}

// want says what a flag takes, for an error about a bad value.
func want(f *flag.Flag) string {
	switch f.Value.(type) {
	case interface{ IsBoolFlag() bool }:
		return "true or false"
	}
	switch fmt.Sprintf("%T", f.Value) {
	case "*flag.intValue", "*flag.uintValue", "*flag.int64Value", "*flag.uint64Value":
		return "a whole number"
	case "*flag.durationValue":
		return "a duration with its unit, such as 500ms, 10s or 1m"
	case "*flag.float64Value":
		return "a number"
	}
	return "a value as for --" + f.Name
}
