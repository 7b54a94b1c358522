package collector

import (
	"fmt"
	"time"

	"github.com/rbee/hive/bus/wire"
)

// The link rules: a GPU whose PCIe replay counter, or its NVLinks' replay
// and recovery errors, rose by this much within linkWindow is degraded
// (a bad slot, riser or cable), until a window passes without it.
const (
	linkWindow      = time.Minute
	pcieReplayRise  = 100
	nvlinkErrorRise = 100
)

// linkSample is one reading of a GPU's link counters.
type linkSample struct {
	at           time.Time
	pcie, nvlink uint64
}

// linkErrors records this reading and judges the rise over the window.
// A counter that went down (the GPU was reset) starts the window anew.
// The reasons name the threshold, not the count: a count would change the
// reason, and so count and log a new health, every tick.
func (st *gpuState) linkErrors(now time.Time, d GPUDevice) []verdict {
	if d.Has&(HasPCIe|HasNVLink) == 0 {
		return nil
	}
	cur := linkSample{now, d.PCIeReplays, d.NVLinkErrors}
	keep := st.links[:0]
	for _, s := range st.links {
		if s.at.After(now.Add(-linkWindow)) && s.pcie <= cur.pcie && s.nvlink <= cur.nvlink {
			keep = append(keep, s)
		}
	}
	st.links = append(keep, cur)
	first := st.links[0]
	var vs []verdict
	if d.Has&HasPCIe != 0 && cur.pcie-first.pcie >= pcieReplayRise {
		vs = append(vs, verdict{status: wire.HealthDegraded, action: wire.ActionHardwareInspection,
			reason: fmt.Sprintf("%s: %d or more PCIe replays in %v (check the slot and riser)", st.name, pcieReplayRise, linkWindow)})
	}
	if d.Has&HasNVLink != 0 && cur.nvlink-first.nvlink >= nvlinkErrorRise {
		vs = append(vs, verdict{status: wire.HealthDegraded, action: wire.ActionResetGPU,
			reason: fmt.Sprintf("%s: %d or more NVLink replay and recovery errors in %v", st.name, nvlinkErrorRise, linkWindow)})
	}
	return vs
}
