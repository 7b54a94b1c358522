//go:build !linux

package collector

import "errors"

type portSet [65536 / 64]uint64

func (s *portSet) has(p int) bool { return p > 0 && p < 65536 && s[p/64]&(1<<(p%64)) != 0 }

// listeningPorts needs Linux's sock_diag; elsewhere every target is asked.
func listeningPorts(*portSet, []byte) error {
	return errors.New("listening sockets are read on Linux only")
}
