package text

import "testing"

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{{"short", 10, "short"}, {"exactly", 7, "exactly"}, {"longer one", 6, "longer..."}, {"héllo", 2, "h..."}, {"日本", 4, "日..."}} {
		if got := Truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"tinyllama":      "tinyllama",
		"héllo 日本":       "héllo 日本",
		"\x1b]0;owned\a": `\x1b]0;owned\x07`,
		"\x1b[2Jclear":   `\x1b[2Jclear`,
		"a\r\nb\tc":      `a\x0d\x0ab\x09c`,
		"\x1b]8;;http://evil\x1b\\x\x1b]8;;\x1b\\": `\x1b]8;;http://evil\x1b\x\x1b]8;;\x1b\`,
		"\u009b31m":     `\u009b31m`,
		"abc\u202edcba": `abc\u202edcba`,
		"bad\xffutf8":   `bad\xffutf8`,
		"del\x7f":       `del\x7f`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{{"short", 10, "short"}, {"exactly", 7, "exactly"}, {"longer one", 6, "lon…"}, {"日本語", 7, "日…"}, {"abcdef", 2, ""}} {
		got := Clip(tc.in, tc.n)
		if got != tc.want || len(got) > tc.n {
			t.Errorf("Clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestClipPrintableCutsNoEscape(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"ab\x1bcd", 6, "ab…"},        // `\x1b` does not fit whole: left out, not cut
		{"ab\x1bcdef", 9, "ab\\x1b…"}, // it fits
		{"ab\x1bcd", 64, "ab\\x1bcd"}, // no cut
		{"héllo wörld", 8, "héll…"},
	} {
		if got := ClipPrintable(c.in, c.n); got != c.want || len(got) > c.n {
			t.Errorf("ClipPrintable(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
