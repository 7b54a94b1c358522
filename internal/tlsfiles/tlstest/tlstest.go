// Package tlstest makes certificate authorities and certificates for
// tests (internal/certgen, failing the test on error): real handshakes,
// no files from outside.
package tlstest

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rbee/hive/internal/certgen"
)

// CA is a certificate authority.
type CA struct{ *certgen.CA }

// NewCA makes a CA valid for a day.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	ca, err := certgen.NewCA(name, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{ca}
}

// Leaf is an issued certificate and its key, PEM.
type Leaf struct{ certgen.Leaf }

// Opts shape a leaf: its names (DNS names, or IPs when they parse),
// whether it is for a client, and its validity (zero: a day from an hour
// ago).
type Opts struct {
	Names               []string
	Client              bool
	NotBefore, NotAfter time.Time
	// CommonName, DNS, Emails and URIs are as in certgen.Opts.
	CommonName        string
	DNS, Emails, URIs []string
}

// Issue signs a leaf certificate.
func (ca *CA) Issue(t testing.TB, o Opts) Leaf {
	t.Helper()
	co := certgen.Opts{Names: o.Names, NotBefore: o.NotBefore, NotAfter: o.NotAfter,
		CommonName: o.CommonName, DNS: o.DNS, Emails: o.Emails, URIs: o.URIs}
	if o.Client {
		co.Usages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	l, err := ca.CA.Issue(co)
	if err != nil {
		t.Fatal(err)
	}
	return Leaf{l}
}

// Write puts b at dir/name, mode 0600, and returns the path.
func Write(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Files writes l as dir/<name>.crt and dir/<name>.key, replacing them
// atomically (a rename), as a rotation does.
func (l Leaf) Files(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, err := l.Leaf.Files(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
