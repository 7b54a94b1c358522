//go:build compose

package deployments_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// caFile is the compose stack's CA (make compose-env, deployments/mkcerts).
const caFile = "secrets/ca.crt"

// httpsClient reaches the hives' published HTTPS ports: their
// certificates name 127.0.0.1 too.
func httpsClient() *http.Client {
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(caFile); err == nil {
		pool.AppendCertsFromPEM(b)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// hubTLS is what a client of the hub needs: its CA.
func hubTLS() nats.Option { return nats.RootCAs(caFile) }

// checkPlaintextRefused shows that every link of the stack refuses
// plaintext: a NATS client at the hub's client port, a leafnode and a
// route at hub-1's own ports (reached at its address on the compose
// network), and plain HTTP at a hive.
func checkPlaintextRefused(t *testing.T) {
	t.Helper()
	hub1 := hubURL(t, 0)
	if nc, err := nats.Connect(hub1); err == nil {
		nc.Close()
		t.Error("a plaintext NATS client connected to hub-1")
	} else {
		t.Logf("plaintext client at hub-1: %v", err)
	}
	if nc, err := nats.Connect(hub1, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12})); err == nil {
		nc.Close()
		t.Error("a client that does not know the compose CA trusted hub-1")
	}

	hive1 := "127.0.0.1:" + hivePort(t, "hive-1")
	resp, err := http.Get("http://" + hive1 + "/health")
	if err != nil {
		t.Errorf("plain HTTP at hive-1: %v", err)
	} else {
		var body struct{ Error string }
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || body.Error == "" {
			t.Errorf("plain HTTP at hive-1: %d %q, want 400 with an error", resp.StatusCode, body.Error)
		}
	}
	if resp, err := httpsClient().Get("https://" + hive1 + "/health"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("HTTPS at hive-1 with the CA: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	ip, err := exec.Command("docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", containerID(t, "hub-1")).Output()
	if err != nil {
		t.Fatalf("hub-1's address: %v", err)
	}
	for _, port := range []string{"7422", "6222"} {
		plaintextProtocolRefused(t, net.JoinHostPort(strings.TrimSpace(string(ip)), port))
	}
}

// plaintextProtocolRefused speaks NATS in clear at addr (a leafnode or
// route port): the server may send its INFO, which must say TLS is
// required, and then closes the connection without answering the PING.
func plaintextProtocolRefused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Errorf("%s: %v", addr, err)
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if line, err := r.ReadString('\n'); err == nil {
		if !strings.HasPrefix(line, "INFO ") || !strings.Contains(line, `"tls_required":true`) {
			t.Errorf("%s: first line %q, want an INFO that requires TLS", addr, line)
		}
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "CONNECT {\"verbose\":false}\r\nPING\r\n"); err != nil {
		t.Logf("%s: closed before the plaintext CONNECT: %v", addr, err)
		return
	}
	rest, err := io.ReadAll(r)
	if strings.Contains(string(rest), "PONG") {
		t.Errorf("%s answered a plaintext PING: %q", addr, rest)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("%s kept a plaintext connection open for 10 s", addr)
	}
	t.Logf("%s: plaintext refused (%d bytes, then closed)", addr, len(rest))
}
