// Package wait holds the one way the hive's modules pause: a sleep that
// ctx cuts short.
package wait

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx ends; it reports whether the whole wait
// passed (false: ctx ended). A d of zero or less only checks ctx.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
