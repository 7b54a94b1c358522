package collector

import (
	"strings"
	"testing"
)

// A worker's strings are bounded and escaped when they change, not on
// every tick: the same strings again cost no allocation.
func TestShownNamesWorkOnlyOnChange(t *testing.T) {
	var n shownNames
	model := "m\x1b]0;owned\x07" + strings.Repeat("x", 400)
	g, i, m := n.of("llm", "9000", model)
	if g != "llm" || i != "9000" || strings.ContainsAny(m, "\x1b\x07") || len(m) > 256 {
		t.Fatalf("shown %q %q %q: not escaped and bounded", g, i, m)
	}
	if a := testing.AllocsPerRun(100, func() { n.of("llm", "9000", model) }); a != 0 {
		t.Errorf("%v allocations a tick for unchanged strings", a)
	}
	if _, _, m2 := n.of("llm", "9000", "other"); m2 != "other" {
		t.Errorf("a changed model shows %q", m2)
	}
}
