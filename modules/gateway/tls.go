package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
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
	// ClientAllowedSANs: DNS names, IPs, URIs and e-mail addresses, each
	// matched against names of its own type (certAllowed).
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
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: tlsfiles.CipherSuites, GetCertificate: pair.GetCertificate, NextProtos: []string{"http/1.1"}}
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
	return len(allowed) == 0 || certAllowed(r.TLS.VerifiedChains[0][0], allowed)
}

// certAllowed reports whether c carries one of the allowed names, each
// matched against names of its own type only, as x509.VerifyOptions and
// the kubelet match them: an IP against IP SANs, a URI (scheme://...)
// against URI SANs, an e-mail address (with @) against e-mail SANs, and
// anything else, a DNS name, against DNS SANs, or against the common name
// when the certificate has no SAN at all (a legacy certificate). So a DNS
// SAN "10.0.0.5" never passes for the IP 10.0.0.5, nor a URI or e-mail
// SAN "queen.internal", nor the common name of a certificate with SANs.
func certAllowed(c *x509.Certificate, allowed []string) bool {
	noSAN := len(c.DNSNames) == 0 && len(c.IPAddresses) == 0 && len(c.URIs) == 0 && len(c.EmailAddresses) == 0
	return slices.ContainsFunc(allowed, func(a string) bool {
		switch {
		case net.ParseIP(a) != nil:
			want := net.ParseIP(a)
			return slices.ContainsFunc(c.IPAddresses, want.Equal)
		case strings.Contains(a, "://"):
			return slices.ContainsFunc(c.URIs, func(u *url.URL) bool { return u.String() == a })
		case strings.Contains(a, "@"):
			return slices.ContainsFunc(c.EmailAddresses, func(e string) bool { return strings.EqualFold(e, a) })
		case noSAN:
			return strings.EqualFold(c.Subject.CommonName, a)
		}
		return slices.ContainsFunc(c.DNSNames, func(d string) bool { return strings.EqualFold(d, a) })
	})
}

// trackedOf is the slot-holding connection under c, TLS or not.
func trackedOf(c net.Conn) (*trackedConn, bool) {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	tc, ok := c.(*trackedConn)
	return tc, ok
}
