package jobs

import (
	"strings"
	"testing"
)

// A narration cannot carry a terminal escape of its parts, only its own
// colours; an event over the bound loses whole lines, never half of one.
func TestNarrationIsPrintableAndCutByLines(t *testing.T) {
	got := narration("fn\x1b]0;t\a", "act\r", "model \x1b]8;;http://evil\x1b\\x\x1b]8;;\x1b\\ \x1b[2J\nnext")
	stripped := strings.NewReplacer("\x1b[1m", "", "\x1b[0m", "", "\x1b[2m", "").Replace(got)
	if strings.ContainsAny(stripped, "\x1b\a\r") || strings.Count(stripped, "\n") != 2 {
		t.Fatalf("narration %q", got)
	}
	line := `{"pid":1,"model":"` + strings.Repeat("m", 100) + `"}` + "\n"
	text := strings.Repeat(line, 50)
	cut := cutLines(text, 1000)
	lines := strings.Split(strings.TrimSuffix(cut, "\n"), "\n")
	for _, l := range lines[:len(lines)-1] {
		if l+"\n" != line {
			t.Fatalf("a kept line was changed: %q", l)
		}
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "lines left out") || len(cut) > 1000+len(last)+1 {
		t.Fatalf("cut to %d bytes, last line %q", len(cut), last)
	}
	if got := cutLines(strings.Repeat("x", 2000), 1000); strings.Contains(got, "xxx") {
		t.Fatalf("one line over the bound is left out whole: %q", got)
	}
}
