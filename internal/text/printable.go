package text

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Printable returns s with every character that can steer a terminal
// written as a visible escape: C0 and C1 controls (ESC, BEL, CR, LF, ...),
// DEL, the bidirectional overrides and isolates, the line and paragraph
// separators, and bytes that are not UTF-8. "\x1b]0;x\a" becomes
// `\x1b]0;x\x07`; U+009B becomes `\u009b`. JSON from encoding/json stays
// valid JSON: it holds no raw C0 control and no invalid UTF-8, and the
// other escapes are JSON's own. What a process or a peer sends reaches a person only
// through it: a `--model` cannot retitle the window, clear the screen,
// plant an OSC 8 link or overwrite a line.
func Printable(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if steers(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case steers(r, size) && r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case steers(r, size):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func steers(r rune, size int) bool {
	switch {
	case r == utf8.RuneError && size == 1:
		return true
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x2028, r == 0x2029, r == 0x200e, r == 0x200f:
		return true
	}
	return false
}

// Clip cuts s to at most n bytes, never inside a UTF-8 sequence; a cut
// string ends in "…" within the n bytes, so the mark shows it was cut.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…" // 3 bytes
	if n < len(mark) {
		return mark[:0]
	}
	m := n - len(mark)
	for m > 0 && !utf8.RuneStart(s[m]) {
		m--
	}
	return s[:m] + mark
}

// ClipPrintable is Printable cut to at most n bytes, never inside an
// escape nor a UTF-8 sequence: Clip(Printable(s)) could end in `\x1` of a
// cut `\x1b`, which reads as other text. A cut string ends in "…".
func ClipPrintable(s string, n int) string {
	p := Printable(s)
	if len(p) <= n {
		return p
	}
	const mark = "…"
	if n < len(mark) {
		return ""
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		tok := s[i : i+size]
		if steers(r, size) {
			tok = Printable(tok)
		}
		if b.Len()+len(tok) > n-len(mark) {
			break
		}
		b.WriteString(tok)
		i += size
	}
	return b.String() + mark
}
