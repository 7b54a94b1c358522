package tlsfiles_test

import (
	"os"
	"testing"
	"time"

	"github.com/rbee/hive/internal/tlsfiles"
	"github.com/rbee/hive/internal/tlsfiles/tlstest"
)

// A changed pair is served from the next handshake on; a broken or
// expired one is refused and the last good pair kept.
func TestPairReloads(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	first := ca.Issue(t, tlstest.Opts{Names: []string{"hive.test"}})
	cert, key := first.Files(t, dir, "hive")
	p, err := tlsfiles.Load(cert, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	serial := func() string { return p.Certificate().Leaf.SerialNumber.String() }
	if serial() != first.Serial.String() {
		t.Fatalf("serial %s", serial())
	}
	second := ca.Issue(t, tlstest.Opts{Names: []string{"hive.test"}})
	second.Files(t, dir, "hive")
	if serial() != second.Serial.String() {
		t.Fatalf("after the rotation: serial %s, want %s", serial(), second.Serial)
	}
	// Broken: the last good pair stays, the failure is counted.
	if err := os.WriteFile(cert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if serial() != second.Serial.String() {
		t.Fatal("a broken file replaced the pair")
	}
	expired := ca.Issue(t, tlstest.Opts{Names: []string{"hive.test"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	expired.Files(t, dir, "hive")
	if serial() != second.Serial.String() {
		t.Fatal("an expired certificate replaced the pair")
	}
	if loads, errs := p.Stats(); loads != 2 || errs != 2 {
		t.Fatalf("loads %d, errors %d; want 2 and 2", loads, errs)
	}
	if !p.NotAfter().After(time.Now()) {
		t.Fatal("NotAfter is the expired one's")
	}
	if _, err := tlsfiles.Load(cert, key, nil); err == nil {
		t.Fatal("an expired pair loaded at start")
	}
}
