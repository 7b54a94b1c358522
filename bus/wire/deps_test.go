package wire_test

import (
	"os/exec"
	"strings"
	"testing"
)

// deps lists the non-standard packages pkgs link, as `go list -deps` sees
// them.
func deps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	args := append([]string{"list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}"}, pkgs...)
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

// The contracts link nothing but the standard library, so whoever imports
// them (the client, a worker helper) does not link the NATS server.
func TestWireImportsOnlyTheStandardLibrary(t *testing.T) {
	for _, p := range deps(t, ".") {
		if p != "github.com/rbee/hive/bus/wire" {
			t.Errorf("wire links %s", p)
		}
	}
}

func TestClientAndWorkerHelperDoNotLinkTheServer(t *testing.T) {
	for _, p := range deps(t, "../../client", "../../internal/workerproc") {
		if strings.HasPrefix(p, "github.com/nats-io/nats-server") || p == "github.com/rbee/hive/bus" {
			t.Errorf("links %s", p)
		}
	}
}
