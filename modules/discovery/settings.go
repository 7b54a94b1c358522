package discovery

import (
	"strings"

	"github.com/rbee/hive/internal/settings"
)

// RegisterSettings declares discovery's settings, bound to c: which
// Queen, how it is spoken to, where the hive says it is. c's values are
// the defaults.
func (c *Config) RegisterSettings(s *settings.Set) {
	q := s.Group("queen")
	q.String(&c.QueenURL, "queen-url", "url", `Queen base URL; "" = standalone`)
	q.String(&c.API, "queen-api", "api", "discovery protocol: heartbeat (POST /v1/hive-heartbeat) or ready (POST /v1/hive/ready)")
	q.String(&c.QueenAllow, "queen-allow", "allow", "hosts, IPs or CIDRs discovery may send to, comma-separated (default: the host of --queen-url)",
		settings.Reloadable)
	q.Var(advertiseFlag{&c.AdvertiseURL, &c.AdvertiseHost}, "advertise-url", "advertise-url", "URL the Queen reaches this hive at, or only its host (default: the outbound address toward the Queen)")
	q.Duration(&c.Retry, "discovery-retry", "discovery-retry", "retry interval after the five discovery attempts (0 = give up like the original)", settings.FileOnly)
	s.Group("tls").String(&c.QueenCAFile, "queen-ca-file", "queen-ca-file", "PEM CA that an https:// Queen's certificate must verify against (default: the system's roots); the hive shows --tls-cert-file to a Queen that asks for a client certificate",
		settings.FileOnly)
	s.Former("advertise-host", func(s *settings.Set, v string) (string, error) {
		if st, _ := s.Lookup("advertise-url"); v != "" && st.Value() == "" {
			return "queen.advertise-url", s.Set("advertise-url", v)
		}
		return "queen.advertise-url", nil
	})
}

// advertiseFlag is --advertise-url: a whole URL, or a host alone, which
// discovery completes with the hive's scheme and port.
type advertiseFlag struct{ url, host *string }

func (a advertiseFlag) String() string {
	if a.url == nil || *a.url != "" {
		return deref(a.url)
	}
	return deref(a.host)
}

func (a advertiseFlag) Set(v string) error {
	*a.url, *a.host = "", ""
	if strings.Contains(v, "://") {
		*a.url = v
	} else {
		*a.host = v
	}
	return nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
