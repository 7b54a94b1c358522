//go:build !cgo

package nvml

import (
	"context"
	"fmt"
)

// Reader is unavailable in a binary built without cgo.
type Reader struct{}

// Open always fails without cgo: go-nvml loads the library with dlopen.
func Open(string) (*Reader, error) {
	return nil, fmt.Errorf("%w: this binary was built without cgo (CGO_ENABLED=0)", ErrUnavailable)
}

// Info, Name, Sample, XIDsDropped and Close exist so that callers build
// either way; a nil Reader is never returned.
func (*Reader) Info() Info                               { return Info{} }
func (*Reader) Name() string                             { return "nvml" }
func (*Reader) Sample(context.Context) (Snapshot, error) { return Snapshot{}, ErrUnavailable }
func (*Reader) XIDsDropped() uint64                      { return 0 }
func (*Reader) Close()                                   {}
