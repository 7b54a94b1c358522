package jobs

import (
	"fmt"

	"github.com/rbee/hive/internal/text"
)

// narration renders one narration entry as the original's narration-core
// did, so existing clients (the keeper, the Hive UI) read it unchanged:
// a bold function name padded to 40, a dim action padded to 20, then the
// message; the trailing newline becomes an empty data: line. The parts
// are made printable (text.Printable): a message carries command lines
// and names any local user chose, and the only escapes that reach a
// terminal are the narration's own colours, which the stream strips
// unless asked for them.
func narration(fn, action, msg string) string {
	return fmt.Sprintf("\x1b[1m%-40s\x1b[0m \x1b[2m%-20s\x1b[0m\n%s\n", text.Printable(fn), text.Printable(action), text.Printable(msg))
}
