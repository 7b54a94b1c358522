//go:build !unix

package gateway

import (
	"errors"
	"syscall"
)

// Without unix write(2), every stream is sent by its own goroutine.
const rawWriteSupported = false

func tryWrite(syscall.RawConn, []byte) (int, error) { return 0, errors.ErrUnsupported }
