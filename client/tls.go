package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"

	"github.com/rbee/hive/internal/tlsfiles"
)

// TLSConfig is the client side of an HTTPS hive or a TLS NATS server:
// caFile (PEM) verifies the server instead of the system's roots ("" keeps
// them), certFile and keyFile are the client certificate shown to a server
// that asks for one ("" for none).
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := tlsfiles.Pool(caFile)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("client: a certificate and its key go together")
	}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

// HTTPSClient is an http.Client for Stream over HTTPS: no timeout (a stream
// is long-lived), no redirect followed, TLS as cfg (from TLSConfig) says.
func HTTPSClient(cfg *tls.Config) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg
	t.ForceAttemptHTTP2 = false // the hive's streams are HTTP/1.1
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
