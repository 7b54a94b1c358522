package wire_test

import (
	"net/url"
	"strconv"
	"testing"

	"github.com/rbee/hive/bus/wire"
)

// An accepted Queen URL is an absolute http(s) URL with a host, and joining
// a path to it never yields "//".
func FuzzValidateQueenURL(f *testing.F) {
	for _, s := range []string{"http://q:7833", "https://q/", "localhost:7833", "ftp://x", "http://", "http://u:p@q", "http://q?x=1", "", "http://[::1]:7833/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if wire.ValidateQueenURL(s) != nil {
			return
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			t.Fatalf("accepted %q", s)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				t.Fatalf("accepted %q with port %q", s, p)
			}
		}
		j := wire.JoinURL(s, "/v1/hive/ready")
		if len(j) < len("/v1/hive/ready")+1 || j[len(j)-len("//v1/hive/ready"):] == "//v1/hive/ready" {
			t.Fatalf("JoinURL(%q) = %q", s, j)
		}
	})
}
