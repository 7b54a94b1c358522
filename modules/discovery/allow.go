package discovery

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// allowList is where the hive may ever send discovery traffic: host names
// (exact, case-insensitive) and IP prefixes. Only a URL's host is checked,
// not its port. A name is not resolved to be checked against a prefix: a
// name must be listed as a name. "localhost" also admits the loopback
// addresses.
type allowList struct {
	names    map[string]bool
	prefixes []netip.Prefix
}

// parseAllow reads a comma-separated list of hosts, IPs and CIDRs.
func parseAllow(s string) (allowList, error) {
	a := allowList{names: map[string]bool{}}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			a.prefixes = append(a.prefixes, p.Masked())
			continue
		}
		if ip, err := netip.ParseAddr(strings.Trim(f, "[]")); err == nil {
			a.prefixes = append(a.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		if strings.ContainsAny(f, "/:@ ") {
			return allowList{}, fmt.Errorf("queen allow entry %q: want a host name, an IP or a CIDR", f)
		}
		a.names[strings.ToLower(strings.TrimSuffix(f, "."))] = true
	}
	return a, nil
}

// hostOf is the host of an http(s) URL.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

func (a allowList) empty() bool { return len(a.names) == 0 && len(a.prefixes) == 0 }

// allows reports whether rawURL's host is on the list.
func (a allowList) allows(rawURL string) bool {
	host := strings.ToLower(strings.TrimSuffix(hostOf(rawURL), "."))
	if host == "" {
		return false
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		for _, p := range a.prefixes {
			if p.Contains(ip) {
				return true
			}
		}
		return a.names["localhost"] && net.IP(ip.AsSlice()).IsLoopback()
	}
	return a.names[host]
}

func (a allowList) String() string {
	var out []string
	for n := range a.names {
		out = append(out, n)
	}
	for _, p := range a.prefixes {
		out = append(out, p.String())
	}
	return strings.Join(out, ",")
}
