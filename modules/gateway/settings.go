package gateway

import (
	"strconv"

	"github.com/rbee/hive/internal/settings"
)

// RegisterSettings declares the gateway's settings, bound to c: what it
// serves to whom, its TLS and its connection limits. c's values are the
// defaults.
func (c *Config) RegisterSettings(s *settings.Set) {
	http := s.Group("http")
	http.String(&c.Access, "access", "access", "token: a token guards reads and control (without one, control from loopback only); open-reads: reads need no token; open: no token, control from anywhere (unsafe)")
	http.List(&c.CORSOrigins, "cors-origins", "cors-origins", `origins whose pages may read the streams, capabilities and health (comma-separated; "*" any, "" none); never state-changing routes`,
		settings.Reloadable)

	tls := s.Group("tls")
	tls.String(&c.TLS.CertFile, "tls-cert-file", "cert-file", "PEM certificate (with its chain) to serve HTTPS on the listener; read again when it changes")
	tls.String(&c.TLS.KeyFile, "tls-key-file", "key-file", "PEM private key of --tls-cert-file (mode 0600 or stricter)")
	tls.String(&c.TLS.ClientCAFile, "tls-client-ca-file", "client-ca-file", "PEM CA that client certificates must verify against; a verified one authorises as the API token does")
	tls.String(&c.TLS.ClientAuth, "tls-client-auth", "client-auth", "with --tls-client-ca-file: none, request (verify when sent) or require", settings.FileOnly)
	tls.List(&c.TLS.ClientAllowedSANs, "tls-client-allowed-sans", "client-allowed-sans", "client certificate names allowed (comma-separated DNS names, IPs, URIs, e-mail addresses), each matched against names of its own type (a DNS name matches the common name only of a certificate without SANs); \"\" = any the CA signed",
		settings.FileOnly)

	lim := s.Group("limits")
	lim.Int(&c.MaxConns, "http-max-conns", "http-max-conns", "open HTTP connections at most; more get 503")
	lim.Int(&c.MaxConnsPerIP, "http-max-conns-per-ip", "http-max-conns-per-ip", "open HTTP connections per client address at most; more get 503")
	lim.Duration(&c.BodyTimeout, "http-body-timeout", "http-body-timeout", "time a client has to send a request body; slower ones get 408", settings.FileOnly)

	// The old booleans folded into access, as an old flat file names them.
	s.Former("auth-read", func(s *settings.Set, v string) (string, error) {
		on, err := strconv.ParseBool(v)
		if err == nil && !on {
			err = s.Set("access", AccessOpenReads)
		}
		return "http.access: open-reads", err
	})
	s.Former("allow-unauthenticated", func(s *settings.Set, v string) (string, error) {
		on, err := strconv.ParseBool(v)
		if err == nil && on {
			err = s.Set("access", AccessOpen)
		}
		return "http.access: open", err
	})
}
