package collector

import (
	"fmt"
	"time"

	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/xid"
)

// noteXID applies one XID of one GPU by NVIDIA's catalogue: the
// application's fault and informational codes change nothing; a code
// whose action is a reset, a reboot or an inspection sticks; the others
// degrade the GPU for xidHold. It reports whether the GPU's state changed.
func (t *healthTracker) noteXID(now time.Time, index int, uuid string, code uint64) bool {
	e, _ := xid.Lookup(code)
	p := e.Policy()
	if p.Health == wire.HealthHealthy {
		return false
	}
	st := t.state(index, uuid)
	switch {
	case e.Sticky():
		if st.sticky != 0 && actionRank[st.stickyAction] >= actionRank[p.Action] {
			return false
		}
		st.sticky, st.stickyAction = code, p.Action
		if t.onSticky != nil {
			st.stickyAction = t.onSticky(uuid, code, p.Action)
		}
		return true
	default:
		changed := st.xid != code || !now.Before(st.xidUntil)
		st.xid, st.xidAction, st.xidUntil = code, p.Action, now.Add(xidHold)
		return changed
	}
}

// stickyReason names the sticky XID and what ends it.
func (st *gpuState) stickyReason() string {
	return fmt.Sprintf("%s: %s: %s needed", st.name, xidName(st.sticky), st.stickyAction)
}

// xidName is "XID 79 (ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS)".
func xidName(code uint64) string {
	if e, ok := xid.Lookup(code); ok {
		return fmt.Sprintf("XID %d (%s)", code, e.Mnemonic)
	}
	return fmt.Sprintf("XID %d", code)
}
