package gateway

import (
	"net"
	"testing"
)

// The per-client caps count an IPv6 peer by its /64: a host's many IPv6
// addresses are not many clients.
func TestClientKey(t *testing.T) {
	key := func(s string) string { return clientKey(&net.TCPAddr{IP: net.ParseIP(s), Port: 1}) }
	if a, b := key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"); a != b || a != "2001:db8:1:2::/64" {
		t.Errorf("one /64: keys %q and %q", a, b)
	}
	if a, b := key("2001:db8:1:2::1"), key("2001:db8:1:3::1"); a == b {
		t.Errorf("two /64s share key %q", a)
	}
	if a, b := key("192.0.2.1"), key("192.0.2.2"); a == b || a != "192.0.2.1" {
		t.Errorf("IPv4: keys %q and %q", a, b)
	}
	if k := key("::ffff:192.0.2.1"); k != "192.0.2.1" {
		t.Errorf("IPv4-mapped: key %q", k)
	}
}
