package wire

import (
	"cmp"
	"encoding/json"
	"slices"
)

// Bounds on what a process on the host can put in a telemetry event
// (SECURITY.md, "Event size"). Any local user can start a process whose
// command line the worker pattern matches; these keep its share of every
// event, and of the hub's history, small.
const (
	// MaxModelBytes, MaxInstanceBytes and MaxGroupBytes bound a worker's
	// strings; a longer one is cut and ends in "…".
	MaxModelBytes    = 256
	MaxInstanceBytes = 128
	MaxGroupBytes    = 64
	// MaxEventBytes bounds one encoded event on SSE and the edge: under
	// the 1 MiB payload limit of a default NATS server, headers included.
	// About 1,200 workers with the longest strings fit, 2,500 typical.
	MaxEventBytes = 768 << 10
	// MaxHubEventBytes bounds the copy of each event sent to the hub, and
	// is the hub stream's max_msg_size (deployments/hub-stream.json): with
	// max_msgs_per_subject 3600, one hive holds at most 225 MiB of the
	// history, however many processes it sees. About 100 workers fit.
	MaxHubEventBytes = 64 << 10
)

// FitEvent encodes ev within limit bytes. When the whole event does not
// fit, it keeps the workers with the lowest PIDs (the longest-running
// processes; a burst of new ones has the highest), as many as fit, and
// sets WorkersOmitted to the number left out, which it also returns (0
// when all fit). Everything but workers is bounded on its own and always
// fits.
func FitEvent(ev TelemetryEvent, limit int) ([]byte, int, error) {
	b, err := json.Marshal(ev)
	if err != nil || len(b) <= limit {
		return b, 0, err
	}
	all, prior := ev.Workers, ev.WorkersOmitted
	ev.Workers, ev.WorkersOmitted = []ProcessStats{}, prior+len(all)
	base, err := json.Marshal(ev)
	if err != nil {
		return nil, 0, err
	}
	byPID := slices.Clone(all)
	slices.SortFunc(byPID, func(a, b ProcessStats) int { return cmp.Compare(a.PID, b.PID) })
	room, n := limit-len(base), 0
	for _, w := range byPID {
		wb, err := json.Marshal(w)
		if err != nil {
			return nil, 0, err
		}
		if room -= len(wb) + 1; room < 0 { // a comma each
			break
		}
		n++
	}
	// The estimate ignores that the omitted count's digits may shrink; it
	// is never short, so this loop ends at once.
	for ; n > 0; n-- {
		ev.Workers, ev.WorkersOmitted = byPID[:n], prior+len(all)-n
		if b, err = json.Marshal(ev); err != nil || len(b) <= limit {
			return b, len(all) - n, err
		}
	}
	return base, len(all), nil
}
