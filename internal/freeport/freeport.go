// Package freeport finds TCP ports for test servers that must know their
// ports before they start (cluster routes, a binary's --port).
package freeport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Ports finds n ports free now, below the kernel's ephemeral range
// where it has room: a port from that range, once let go, is soon the
// source port of some outgoing connection (parallel tests dial a lot),
// and a node that binds it later, or binds it again after a restart,
// fails with "address already in use".
func Ports(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	lo := ephemeralLow()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		addr := "127.0.0.1:0"
		if lo > 20000 && tries < 1000 {
			addr = "127.0.0.1:" + strconv.Itoa(10000+rand.IntN(lo-10000))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if tries < 1000 {
				continue
			}
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range, or 0.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	lo, _ := strconv.Atoi(f[0])
	return lo
}
