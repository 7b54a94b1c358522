package jobs

import "fmt"

// narration renders one narration entry as the original's narration-core
// did, so existing clients (the keeper, the Hive UI) read it unchanged:
// a bold function name padded to 40, a dim action padded to 20, then the
// message; the trailing newline becomes an empty data: line.
func narration(fn, action, msg string) string {
	return fmt.Sprintf("\x1b[1m%-40s\x1b[0m \x1b[2m%-20s\x1b[0m\n%s\n", fn, action, msg)
}
