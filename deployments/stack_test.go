//go:build compose

package deployments_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// The test stack is docker-compose.yml under a project name of its own,
// with every host port picked by the host on 127.0.0.1: it shares the
// machine with `make compose-up` (the usual ports) and with another copy
// of this test, and its `down` removes only its own containers, volumes
// and network.
var (
	project = envOr("HIVE_COMPOSE_PROJECT", fmt.Sprintf("hivetest%d", os.Getpid()))
	// portVars are the compose file's host-port settings, all empty here.
	portVars = []string{"HIVE_HUB1_PORT", "HIVE_HUB2_PORT", "HIVE_HUB3_PORT", "HIVE_HUB1_MONITOR_PORT",
		"HIVE_HUB2_MONITOR_PORT", "HIVE_HUB3_MONITOR_PORT", "HIVE_HIVE1_PORT", "HIVE_HIVE2_PORT", "HIVE_HIVE3_PORT"}
)

// composeCmd is docker-compose (or COMPOSE) on the test's project.
func composeCmd(args ...string) *exec.Cmd {
	cmdline := strings.Fields(envOr("COMPOSE", "docker-compose"))
	cmdline = append(cmdline, "-p", project, "-f", envOr("COMPOSE_FILE", "docker-compose.yml"))
	cmdline = append(cmdline, args...)
	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	cmd.Env = append(os.Environ(), "HIVE_PUBLISH_IP=127.0.0.1")
	for _, v := range portVars {
		cmd.Env = append(cmd.Env, v+"=")
	}
	return cmd
}

func compose(t *testing.T, args ...string) {
	t.Helper()
	if out, err := composeCmd(args...).CombinedOutput(); err != nil {
		t.Fatalf("compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	// A container started again gets new host ports.
	portsMu.Lock()
	clear(ports)
	portsMu.Unlock()
}

// composeUp starts the stack, its teardown registered first: a failed
// `up` leaves nothing behind either.
func composeUp(t *testing.T) {
	t.Helper()
	compose(t, "down", "-v", "--remove-orphans")
	t.Cleanup(func() {
		if out, err := composeCmd("down", "-v", "--remove-orphans").CombinedOutput(); err != nil {
			t.Logf("compose down: %v\n%s", err, out)
		}
	})
	compose(t, "up", "-d")
}

var (
	portsMu sync.Mutex
	ports   = map[string]string{}
)

// hostPort is where the host reaches service's container port, e.g.
// "49153" for hub-1's 4222 (asked once per start: a container started
// again gets a new one).
func hostPort(t *testing.T, service, port string) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	key := service + "/" + port
	if p, ok := ports[key]; ok {
		return p
	}
	out, err := composeCmd("port", service, port).Output()
	if err != nil {
		t.Fatalf("compose port %s %s: %v", service, port, err)
	}
	addr := strings.TrimSpace(string(out))
	i := strings.LastIndexByte(addr, ':')
	if i < 0 || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("compose port %s %s: %q, want 127.0.0.1:<port>", service, port, addr)
	}
	ports[key] = addr[i+1:]
	return ports[key]
}

// containerID is service's container.
func containerID(t *testing.T, service string) string {
	t.Helper()
	out, err := composeCmd("ps", "-q", service).Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("compose ps -q %s: %v", service, err)
	}
	return strings.Fields(string(out))[0]
}

// hubURL is hub node i's client URL on the host.
func hubURL(t *testing.T, i int) string {
	return "nats://127.0.0.1:" + hostPort(t, hubNodes[i], "4222")
}

// hubMonitor is hub node i's monitoring base URL on the host.
func hubMonitor(t *testing.T, i int) string {
	return "http://127.0.0.1:" + hostPort(t, hubNodes[i], "8222")
}

// hivePort is a hive's HTTPS port on the host.
func hivePort(t *testing.T, id string) string { return hostPort(t, id, "7835") }

// readerPassword is the named reader's, from deployments/.env: the
// stream's own state (STREAM.INFO) is the reader's to ask, not an
// anonymous client's.
func readerPassword(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(".env")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "HIVE_HUB_READER_PASSWORD="); ok {
			return v
		}
	}
	t.Fatal(".env has no HIVE_HUB_READER_PASSWORD")
	return ""
}
