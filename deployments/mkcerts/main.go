// Command mkcerts makes the compose stack's TLS secrets (make
// compose-env): a small CA and, for every hub node and hive of
// docker-compose.yml, a certificate that names its service (hub-1,
// hive-1, ...) as well as localhost and 127.0.0.1, so the host reaches
// them through the published ports. Each serves and is also a client
// certificate: hub nodes show theirs on routes, hives on their leafnode.
//
// The files go into -dir (git-ignored): certificates mode 0644, keys mode
// 0600 and owned by -uid, the user the images run as. What is there is
// kept while it is whole and more than two weeks from expiry; otherwise
// everything is made anew (the CA's key is not kept: nothing else is
// ever signed with it).
package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rbee/hive/internal/certgen"
)

func main() {
	dir := flag.String("dir", "deployments/secrets", "where the files go")
	hubs := flag.Int("hubs", 3, "hub nodes: hub-1 ... hub-N")
	hives := flag.Int("hives", 3, "hives: hive-1 ... hive-N")
	uid := flag.Int("uid", 65532, "owner of the files, the images' user (-1: leave them to whoever runs this)")
	flag.Parse()
	if err := run(*dir, *hubs, *hives, *uid); err != nil {
		fmt.Fprintln(os.Stderr, "mkcerts:", err)
		os.Exit(1)
	}
}

func names(hubs, hives int) []string {
	var out []string
	for i := 1; i <= hubs; i++ {
		out = append(out, fmt.Sprintf("hub-%d", i))
	}
	for i := 1; i <= hives; i++ {
		out = append(out, fmt.Sprintf("hive-%d", i))
	}
	return out
}

func run(dir string, hubs, hives, uid int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	services := names(hubs, hives)
	if fresh(dir, services, 14*24*time.Hour) {
		return own(dir, services, uid)
	}
	ca, err := certgen.NewCA("hive compose CA", 365*24*time.Hour)
	if err != nil {
		return err
	}
	if err := certgen.WriteFile(filepath.Join(dir, "ca.crt"), ca.CertPEM); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(dir, "ca.crt"), 0o644); err != nil {
		return err
	}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for _, s := range services {
		l, err := ca.Issue(certgen.Opts{Names: []string{s, "localhost", "127.0.0.1"}, Usages: both,
			NotAfter: time.Now().Add(90 * 24 * time.Hour)})
		if err != nil {
			return err
		}
		crt, _, err := l.Files(dir, s)
		if err != nil {
			return err
		}
		if err := os.Chmod(crt, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("%s: a CA and certificates for %v (90 days)\n", dir, services)
	return own(dir, services, uid)
}

// fresh reports whether every service's certificate is there, verifies
// against ca.crt and outlives margin.
func fresh(dir string, services []string, margin time.Duration) bool {
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return false
	}
	for _, s := range services {
		b, err := os.ReadFile(filepath.Join(dir, s+".crt"))
		if err != nil {
			return false
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return false
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil || time.Until(c.NotAfter) < margin {
			return false
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: s, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return false
		}
		if _, err := os.Stat(filepath.Join(dir, s+".key")); err != nil {
			return false
		}
	}
	return true
}

// own gives the services' keys to uid: the containers run as that user
// and a key must be readable by its owner only (the hive refuses one
// that group or others may read).
func own(dir string, services []string, uid int) error {
	if uid < 0 || uid == os.Geteuid() {
		return nil
	}
	var files []string
	for _, s := range services {
		files = append(files, filepath.Join(dir, s+".key"))
	}
	for _, f := range files {
		if err := os.Chown(f, uid, uid); err != nil {
			if errors.Is(err, os.ErrPermission) {
				return fmt.Errorf("the containers run as uid %d and the keys are mode 0600: give them to that user (sudo chown %d:%d %s/*.key) or run make compose-env as root", uid, uid, uid, dir)
			}
			return err
		}
	}
	return nil
}
