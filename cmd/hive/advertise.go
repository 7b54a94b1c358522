package main

import (
	"net"
	"net/url"
)

// advertiseHost is the host the Queen should use to reach this hive:
// --advertise-url's host, else --advertise-host, else the local address of
// the route toward the Queen (127.0.0.1 only when the Queen is on loopback),
// else the first non-loopback interface address.
func advertiseHost(cfg *config) string {
	if cfg.AdvertiseURL != "" {
		if u, err := url.Parse(cfg.AdvertiseURL); err == nil && u.Hostname() != "" {
			return u.Hostname()
		}
	}
	if cfg.AdvertiseHost != "" {
		return cfg.AdvertiseHost
	}
	if h := outboundHost(cfg.QueenURL); h != "" {
		return h
	}
	return firstInterfaceAddr()
}

// outboundHost returns the local address the kernel would use toward the
// Queen. Connecting a UDP socket only consults the routing table; no packet
// is sent.
func outboundHost(queenURL string) string {
	u, err := url.Parse(queenURL)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	addrs, err := net.LookupIP(u.Hostname())
	if err != nil || len(addrs) == 0 {
		return ""
	}
	if addrs[0].IsLoopback() {
		return "127.0.0.1"
	}
	c, err := net.Dial("udp", net.JoinHostPort(addrs[0].String(), port))
	if err != nil {
		return ""
	}
	defer c.Close()
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
		return a.IP.String()
	}
	return ""
}

func firstInterfaceAddr() string {
	ifaces, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range ifaces {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}
