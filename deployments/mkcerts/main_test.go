package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rbee/hive/internal/certgen"
)

// Each service's certificate verifies against the CA for its own name and
// 127.0.0.1, as a server and as a client; a second run keeps the files,
// and a certificate near its end gets everything made anew.
func TestMakeKeepRenew(t *testing.T) {
	dir := t.TempDir()
	if err := run(dir, 1, 2, -1); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	for _, s := range []string{"hub-1", "hive-1", "hive-2"} {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, s+".crt"), filepath.Join(dir, s+".key"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{s, "127.0.0.1"} {
			for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
					t.Errorf("%s as %s (usage %v): %v", s, name, u, err)
				}
			}
		}
		if st, _ := os.Stat(filepath.Join(dir, s+".key")); st.Mode().Perm() != 0o600 {
			t.Errorf("%s.key mode %o", s, st.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "hive-3.crt")); err == nil {
		t.Error("a certificate for a hive that was not asked for")
	}

	if err := run(dir, 1, 2, -1); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "ca.crt")); !bytes.Equal(again, caPEM) {
		t.Error("a second run replaced whole certificates")
	}

	ca, err := certgen.NewCA("old", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	soon, err := ca.Issue(certgen.Opts{Names: []string{"hive-2"}, NotAfter: time.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := soon.Files(dir, "hive-2"); err != nil {
		t.Fatal(err)
	}
	if err := run(dir, 1, 2, -1); err != nil {
		t.Fatal(err)
	}
	if renewed, _ := os.ReadFile(filepath.Join(dir, "ca.crt")); bytes.Equal(renewed, caPEM) {
		t.Error("a certificate a day from its end was kept")
	}
}
