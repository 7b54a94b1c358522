// Package kmsg reads the NVIDIA driver's Xid lines from the kernel log
// (/dev/kmsg, or a file for tests): unlike NVML's Xid events they name the
// process that caused one (pid=, name=) and the GPU by its PCI bus id,
// and they tell of a GPU that fell off the bus when NVML no longer can.
package kmsg

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
)

// Event is one Xid of the kernel log.
type Event struct {
	Code uint64
	// PCI is the GPU's bus id as domain:bus:device, lower case
	// ("0000:05:00"); "" where the line names none.
	PCI string
	// PID is the process the driver blames; 0 where it names none
	// ('<unknown>'). Name is its command name as the line gives it, for
	// the log only: the caller escapes it.
	PID  int
	Name string
}

var (
	xidRe = regexp.MustCompile(`NVRM: Xid \(PCI:([0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2})(?:\.[0-9A-Fa-f])?\): (\d{1,6})\b` +
		`(?:, pid=(?:'?<unknown>'?|(\d{1,10})))?(?:, name=([^,]{0,64}))?`)
	offBusRe = regexp.MustCompile(`NVRM: GPU (?:at PCI:)?([0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2})(?:\.[0-9A-Fa-f])?: GPU has fallen off the bus`)
)

// Parse reads one line of the kernel log (a /dev/kmsg record with its
// "prio,seq,usec,flags;" prefix, or a dmesg line): ok is false for a line
// that is no Xid. "GPU has fallen off the bus" without an Xid is Xid 79.
func Parse(line []byte) (Event, bool) {
	if !bytes.Contains(line, []byte("NVRM: ")) {
		return Event{}, false
	}
	if m := xidRe.FindSubmatch(line); m != nil {
		code, err := strconv.ParseUint(string(m[2]), 10, 64)
		if err != nil {
			return Event{}, false
		}
		ev := Event{Code: code, PCI: strings.ToLower(string(m[1])), Name: strings.TrimSpace(string(m[4]))}
		if len(m[3]) > 0 {
			ev.PID, _ = strconv.Atoi(string(m[3]))
		}
		if ev.Name == "<unknown>" {
			ev.Name = ""
		}
		return ev, true
	}
	if m := offBusRe.FindSubmatch(line); m != nil {
		return Event{Code: 79, PCI: strings.ToLower(string(m[1]))}, true
	}
	return Event{}, false
}

// NormalizePCI turns NVML's bus id ("00000000:05:00.0") into Event.PCI's
// form ("0000:05:00").
func NormalizePCI(busID string) string {
	busID = strings.ToLower(busID)
	if i := strings.LastIndexByte(busID, '.'); i >= 0 {
		busID = busID[:i]
	}
	parts := strings.Split(busID, ":")
	if len(parts) != 3 {
		return ""
	}
	d := parts[0]
	if len(d) > 4 {
		d = d[len(d)-4:]
	}
	return d + ":" + parts[1] + ":" + parts[2]
}
