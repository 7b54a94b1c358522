package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/rbee/hive/internal/tlsfiles"
)

// TLSConfig serves HTTPS on the gateway's one listener.
type TLSConfig struct {
	// CertFile and KeyFile are read again when they change: new
	// handshakes get the new pair, open streams go on.
	CertFile, KeyFile string
	// ClientCAFile verifies client certificates; ClientAuth is none,
	// request (verified when sent) or require. A verified certificate
	// authorises what the token does, optionally only for the names in
	// ClientAllowedSANs (DNS names, IPs, URIs, e-mail addresses or the
	// subject's common name).
	ClientCAFile      string
	ClientAuth        string
	ClientAllowedSANs []string
}

// Client authentication modes.
const (
	ClientAuthNone    = "none"
	ClientAuthRequest = "request"
	ClientAuthRequire = "require"
)

func (c TLSConfig) enabled() bool { return c.CertFile != "" }

func (c TLSConfig) validate() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return fmt.Errorf("gateway: a TLS certificate and key go together")
	}
	switch c.ClientAuth {
	case "", ClientAuthNone:
	case ClientAuthRequest, ClientAuthRequire:
		if c.ClientCAFile == "" {
			return fmt.Errorf("gateway: TLS client auth %q needs a client CA file", c.ClientAuth)
		}
	default:
		return fmt.Errorf("gateway: TLS client auth %q: want none, request or require", c.ClientAuth)
	}
	if !c.enabled() && (c.ClientCAFile != "" || len(c.ClientAllowedSANs) > 0) {
		return fmt.Errorf("gateway: client certificates need TLS: set the certificate and key")
	}
	return nil
}

// serverTLS is the listener's TLS configuration: TLS 1.2 at least, Go's
// default suites, HTTP/1.1 only (streams take their connection over from
// net/http, which HTTP/2 does not allow).
func (c TLSConfig) serverTLS(log *slog.Logger) (*tls.Config, *tlsfiles.Pair, error) {
	pair, err := tlsfiles.Load(c.CertFile, c.KeyFile, log)
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: pair.GetCertificate, NextProtos: []string{"http/1.1"}}
	if c.ClientCAFile != "" {
		pool, err := tlsfiles.Pool(c.ClientCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("gateway: client CA: %w", err)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if c.ClientAuth == ClientAuthRequire {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		if c.ClientAuth == ClientAuthNone || c.ClientAuth == "" {
			cfg.ClientAuth = tls.NoClientCert
		}
	}
	return cfg, pair, nil
}

// clientCertOK reports whether r came with a client certificate that
// verified against the client CA and carries an allowed name.
func (g *Gateway) clientCertOK(r *http.Request) bool {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return false
	}
	allowed := g.cfg.TLS.ClientAllowedSANs
	if len(allowed) == 0 {
		return true
	}
	return slices.ContainsFunc(certNames(r.TLS.VerifiedChains[0][0]), func(n string) bool {
		return slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, n) })
	})
}

func certNames(c *x509.Certificate) []string {
	names := append([]string{c.Subject.CommonName}, c.DNSNames...)
	names = append(names, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	return names
}

// trackedOf is the slot-holding connection under c, TLS or not.
func trackedOf(c net.Conn) (*trackedConn, bool) {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	tc, ok := c.(*trackedConn)
	return tc, ok
}
