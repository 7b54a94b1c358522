package discovery

import (
	"net"
	"net/url"
	"strconv"
)

// AdvertiseHost is the host the Queen should use to reach this hive:
// advertiseURL's host, else advertiseHost, else the local address of the
// route toward the Queen (127.0.0.1 only when the Queen is on loopback),
// else the first non-loopback interface address.
func AdvertiseHost(queenURL, advertiseURL, advertiseHost string) string {
	if advertiseURL != "" {
		if u, err := url.Parse(advertiseURL); err == nil && u.Hostname() != "" {
			return u.Hostname()
		}
	}
	if advertiseHost != "" {
		return advertiseHost
	}
	if h := outboundHost(queenURL); h != "" {
		return h
	}
	return firstInterfaceAddr()
}

// HiveURL is the base URL the Queen subscribes to: https:// when the hive
// serves TLS.
func HiveURL(queenURL, advertiseURL, advertiseHost string, port int, tls bool) string {
	if advertiseURL != "" {
		return advertiseURL
	}
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(AdvertiseHost(queenURL, "", advertiseHost), strconv.Itoa(port))
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
	ips, err := net.LookupIP(u.Hostname())
	if err != nil || len(ips) == 0 {
		return ""
	}
	if ips[0].IsLoopback() {
		return "127.0.0.1"
	}
	c, err := net.Dial("udp", net.JoinHostPort(ips[0].String(), port))
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
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return "127.0.0.1"
}
