//go:build unix

package gateway

import "syscall"

const rawWriteSupported = true

// tryWrite writes what the socket takes of b now, without waiting: a full
// socket returns n < len(b) and no error. The runtime's poller is not
// involved, so nothing parks.
func tryWrite(raw syscall.RawConn, b []byte) (int, error) {
	var n int
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), b)
			if werr != syscall.EINTR {
				return true
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case werr == syscall.EAGAIN:
		return 0, nil
	case werr != nil:
		return 0, werr
	}
	return n, nil
}
