// Package tlsfiles serves a certificate and key from files that may be
// replaced while the process runs, as exporter-toolkit's web config does:
// the files are looked at again on each handshake, and read again when
// they changed, so a rotation needs no restart. Connections already open
// keep the certificate they started with. A pair that does not load (a
// broken or half-written file, a key that does not match, an expired
// certificate) keeps the last good one and is reported once per change.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Pair is a certificate and key kept from files.
type Pair struct {
	cert, key string
	log       *slog.Logger
	now       func() time.Time

	mu      sync.Mutex
	current *tls.Certificate
	leaf    *x509.Certificate
	seen    stamp // the files' state when last read, good or not
	loads   uint64
	errs    uint64
}

// stamp tells that a file changed: size and modification time of both.
type stamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
	keyMode           os.FileMode // a chmod 600 after a refused rotation is a change
}

// Load reads the pair once; a pair that does not load now is an error.
func Load(certFile, keyFile string, log *slog.Logger) (*Pair, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pair{cert: certFile, key: keyFile, log: log, now: time.Now}
	st, err := p.stat()
	if err != nil {
		return nil, err
	}
	c, leaf, err := p.read()
	if err != nil {
		return nil, err
	}
	p.current, p.leaf, p.seen, p.loads = c, leaf, st, 1
	return p, nil
}

func (p *Pair) stat() (stamp, error) {
	c, err := os.Stat(p.cert)
	if err != nil {
		return stamp{}, err
	}
	k, err := os.Stat(p.key)
	if err != nil {
		return stamp{}, err
	}
	return stamp{c.ModTime(), k.ModTime(), c.Size(), k.Size(), k.Mode()}, nil
}

func (p *Pair) read() (*tls.Certificate, *x509.Certificate, error) {
	// A key others may read is refused at a rotation as at the start: a
	// rotation done with the wrong umask must not go unnoticed.
	if st, err := os.Stat(p.key); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, nil, fmt.Errorf("tls: %s has mode %04o: group and others must have no access (chmod 600 %s)", p.key, st.Mode().Perm(), p.key)
	}
	c, err := tls.LoadX509KeyPair(p.cert, p.key)
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %s, %s: %w", p.cert, p.key, err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %s: %w", p.cert, err)
	}
	if now := p.now(); now.After(leaf.NotAfter) {
		return nil, nil, fmt.Errorf("tls: %s expired at %s", p.cert, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	c.Leaf = leaf
	return &c, leaf, nil
}

// Certificate is the pair to serve now, read again first if its files
// changed since they were last read. It never fails once Load did.
func (p *Pair) Certificate() *tls.Certificate {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, err := p.stat()
	if err != nil || st == p.seen {
		return p.current
	}
	p.seen = st
	c, leaf, err := p.read()
	if err != nil {
		p.errs++
		p.log.Error("TLS certificate not reloaded: still serving the previous one", "err", err, "not_after", p.leaf.NotAfter)
		return p.current
	}
	p.current, p.leaf = c, leaf
	p.loads++
	p.log.Info("TLS certificate reloaded", "subject", leaf.Subject.String(), "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
	return p.current
}

// GetCertificate is tls.Config.GetCertificate.
func (p *Pair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return p.Certificate(), nil
}

// GetClientCertificate is tls.Config.GetClientCertificate, for the
// client side of a link (the hive toward the Queen).
func (p *Pair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return p.Certificate(), nil
}

// NotAfter is when the certificate served now ends.
func (p *Pair) NotAfter() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leaf.NotAfter
}

// Stats are the loads that succeeded and the reloads that failed.
func (p *Pair) Stats() (loads, errs uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.loads, p.errs
}

// Pool reads a PEM file of CA certificates.
func Pool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("tls: " + file + " holds no PEM certificate")
	}
	return pool, nil
}

// CipherSuites are the TLS 1.2 suites the hive's links take: forward
// secrecy and AEAD only (TLS 1.3 has nothing else). Go's defaults still
// accept ECDHE with AES-CBC and SHA-1, which scanners flag and no client
// of the hive needs.
var CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}
