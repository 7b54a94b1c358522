package collector

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
)

// portSet is a set of TCP ports, one bit each.
type portSet [65536 / 64]uint64

func (s *portSet) add(p uint16)   { s[p/64] |= 1 << (p % 64) }
func (s *portSet) has(p int) bool { return p > 0 && p < 65536 && s[p/64]&(1<<(p%64)) != 0 }
func (s *portSet) reset()         { clear(s[:]) }

// listeningPorts fills s with the ports of every TCP socket listening in
// the hive's network namespace, IPv4 and IPv6, whatever its address: a
// port outside it refuses 127.0.0.1, so its probe is answered without a
// connection. One sock_diag dump per family asks the kernel for the
// listening sockets only (not every connection, as /proc/net/tcp would
// list), as ss(8) does; it needs no privilege.
func listeningPorts(s *portSet, buf []byte) error {
	s.reset()
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_INET_DIAG)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer syscall.Close(fd)
	for seq, family := range []uint8{syscall.AF_INET, syscall.AF_INET6} {
		if err := dumpListeners(fd, uint32(seq+1), family, s, buf); err != nil {
			return err
		}
	}
	return nil
}

const (
	sockDiagByFamily = 20      // SOCK_DIAG_BY_FAMILY
	tcpListen        = 10      // TCP_LISTEN, a bit of idiag_states
	diagReqLen       = 16 + 56 // nlmsghdr + inet_diag_req_v2
)

// dumpListeners asks for family's listening TCP sockets and adds their
// local ports to s.
func dumpListeners(fd int, seq uint32, family uint8, s *portSet, buf []byte) error {
	var req [diagReqLen]byte
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], diagReqLen)
	ne.PutUint16(req[4:], sockDiagByFamily)
	ne.PutUint16(req[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	req[16], req[17] = family, syscall.IPPROTO_TCP
	ne.PutUint32(req[20:], 1<<tcpListen)
	if err := syscall.Sendto(fd, req[:], 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return os.NewSyscallError("sendto", err)
	}
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("recvfrom", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("sock_diag: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case syscall.NLMSG_DONE:
				return nil
			case syscall.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := -int32(ne.Uint32(m.Data)); errno != 0 {
						return os.NewSyscallError("sock_diag", syscall.Errno(errno))
					}
				}
				return nil
			}
			// inet_diag_msg: family, state, timer, retrans, then the
			// socket id, whose first field is the local port, big-endian.
			if len(m.Data) >= 6 {
				s.add(binary.BigEndian.Uint16(m.Data[4:6]))
			}
		}
	}
}
