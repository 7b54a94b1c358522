package discovery

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/rbee/hive/internal/tlsfiles"
)

// transport is the POSTs' to the Queen: no proxy from the environment
// (the Queen is reached directly, as the allow list says), an https://
// Queen verified against QueenCAFile when set, and the hive's client
// certificate for a Queen that asks for one.
func (c Config) transport(log *slog.Logger) (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	tc := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: tlsfiles.CipherSuites}
	if c.QueenCAFile != "" {
		pool, err := tlsfiles.Pool(c.QueenCAFile)
		if err != nil {
			return nil, fmt.Errorf("discovery: Queen CA: %w", err)
		}
		tc.RootCAs = pool
	}
	if c.ClientCertFile != "" {
		pair, err := tlsfiles.Load(c.ClientCertFile, c.ClientKeyFile, log)
		if err != nil {
			return nil, fmt.Errorf("discovery: client certificate: %w", err)
		}
		tc.GetClientCertificate = pair.GetClientCertificate
	}
	t.TLSClientConfig = tc
	return t, nil
}
