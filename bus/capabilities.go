package bus

import (
	"context"

	"github.com/rbee/hive/bus/wire"
)

// RequestCapabilities asks the capabilities module for this machine's
// devices (wire.SubjectCapabilitiesGet): discovery's first attempt, the
// gateway's /capabilities and jobs' hive_check all ask the same way.
func RequestCapabilities(ctx context.Context, nc *Conn) (wire.Capabilities, error) {
	return Request[wire.CapabilitiesRequest, wire.Capabilities](ctx, nc, wire.SubjectCapabilitiesGet, wire.CapabilitiesRequest{})
}
