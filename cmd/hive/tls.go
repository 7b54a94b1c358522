package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"

	"github.com/rbee/hive/internal/tlsfiles"
)

// natsTLS makes the edge listener's and the hub leafnode's TLS from the
// files named in cfg; each pair is read again when its files change (no
// restart: nats-server asks GetCertificate on every handshake).
func natsTLS(cfg *config, log *slog.Logger) (edge, hub *tls.Config, err error) {
	if f := cfg.NATSTLS; f.cert != "" {
		pair, err := tlsfiles.Load(f.cert, f.key, log.With("tls", "nats"))
		if err != nil {
			return nil, nil, fmt.Errorf("tls.nats-cert-file: %w", err)
		}
		edge = &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: tlsfiles.CipherSuites, GetCertificate: pair.GetCertificate}
		if f.clientCA != "" {
			pool, err := tlsfiles.Pool(f.clientCA)
			if err != nil {
				return nil, nil, fmt.Errorf("tls.nats-client-ca-file: %w", err)
			}
			edge.ClientCAs, edge.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
	}
	h := cfg.HubTLS
	if h.ca == "" && h.cert == "" && !strings.Contains(cfg.NATS.Hub, "tls://") {
		return edge, nil, nil
	}
	hub = &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: tlsfiles.CipherSuites}
	if h.ca != "" {
		if hub.RootCAs, err = tlsfiles.Pool(h.ca); err != nil {
			return nil, nil, fmt.Errorf("tls.nats-hub-ca-file: %w", err)
		}
	}
	if h.cert != "" {
		pair, err := tlsfiles.Load(h.cert, h.key, log.With("tls", "hub"))
		if err != nil {
			return nil, nil, fmt.Errorf("tls.nats-hub-cert-file: %w", err)
		}
		hub.GetClientCertificate = pair.GetClientCertificate
	}
	return edge, hub, nil
}
