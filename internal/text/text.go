// Package text bounds strings from outside (command lines, paths, bodies)
// before they reach an error, a log line or a reply.
package text

import "unicode/utf8"

// Truncate returns s cut to at most n bytes, never inside a UTF-8
// sequence, with "..." saying it was cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
