package main

// Issue 19: HTTPS on the real binary with certificates made here
// (internal/tlsfiles/tlstest): the stream, wrong CA, wrong name and
// expired certificates refused, client certificates that authorise
// control, the token over TLS, a rotation under an open stream, a plain
// HTTP client, and curl as an outside client.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/client"
	"github.com/rbee/hive/internal/tlsfiles/tlstest"
)

type tlsFixture struct {
	dir                string
	ca, other          *tlstest.CA
	certFile, keyFile  string
	caFile, otherCA    string
	queenCert, expCert tls.Certificate
	strangerCert       tls.Certificate
}

func newTLSFixture(t *testing.T) *tlsFixture {
	t.Helper()
	f := &tlsFixture{dir: t.TempDir(), ca: tlstest.NewCA(t, "hive test CA"), other: tlstest.NewCA(t, "another CA")}
	f.certFile, f.keyFile = f.ca.Issue(t, tlstest.Opts{Names: []string{"localhost", "127.0.0.1"}}).Files(t, f.dir, "hive")
	f.caFile = tlstest.Write(t, f.dir, "ca.pem", f.ca.CertPEM)
	f.otherCA = tlstest.Write(t, f.dir, "other.pem", f.other.CertPEM)
	pair := func(l tlstest.Leaf) tls.Certificate {
		c, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	f.queenCert = pair(f.ca.Issue(t, tlstest.Opts{Names: []string{"queen.test"}, Client: true}))
	f.expCert = pair(f.ca.Issue(t, tlstest.Opts{Names: []string{"queen.test"}, Client: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}))
	f.strangerCert = pair(f.other.Issue(t, tlstest.Opts{Names: []string{"queen.test"}, Client: true}))
	return f
}

// client trusts roots (nil: the fixture's CA) and shows cert when asked.
func (f *tlsFixture) client(t *testing.T, roots string, cert *tls.Certificate, serverName string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	b := f.ca.CertPEM
	if roots == "other" {
		b = f.other.CertPEM
	}
	pool.AppendCertsFromPEM(b)
	tc := &tls.Config{RootCAs: pool, ServerName: serverName}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

func call(c *http.Client, method, url string, hdr map[string]string, body string) (int, string, error) {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestHTTPS(t *testing.T) {
	f := newTLSFixture(t)
	h := startHiveEnv(t, []string{"HIVE_API_TOKEN=" + e2eToken, "HIVE_TLS_CLIENT_AUTH=request"},
		"--tls-cert-file", f.certFile, "--tls-key-file", f.keyFile, "--tls-client-ca-file", f.caFile)
	if !strings.HasPrefix(h.httpBase, "https://") {
		t.Fatalf("ready file says %s", h.httpBase)
	}
	good := f.client(t, "", nil, "")
	if code, body, err := call(good, "GET", h.httpBase+"/health", nil, ""); err != nil || code != 200 || body != "ok" {
		t.Fatalf("health over TLS: %d %q %v", code, body, err)
	}
	// Wrong CA and wrong name: the client refuses the hive.
	if _, _, err := call(f.client(t, "other", nil, ""), "GET", h.httpBase+"/health", nil, ""); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client trusting another CA connected: %v", err)
	}
	if _, _, err := call(f.client(t, "", nil, "evil.test"), "GET", h.httpBase+"/health", nil, ""); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a wrong name was accepted: %v", err)
	}
	// Client certificates: an expired one is refused at the handshake;
	// one of another CA is not even sent (the hive names its CA in the
	// request) and authorises nothing; the Queen's authorises control
	// without the token; the token alone still works.
	job := `{"operation":"model_list","hive_id":"h"}`
	ct := map[string]string{"Content-Type": "application/json"}
	if code, _, err := call(f.client(t, "", &f.expCert, ""), "POST", h.httpBase+"/v1/jobs", ct, job); err == nil {
		t.Errorf("an expired client certificate got %d", code)
	}
	if code, _, err := call(f.client(t, "", &f.strangerCert, ""), "POST", h.httpBase+"/v1/jobs", ct, job); err == nil && code != 401 {
		t.Errorf("another CA's client certificate got %d", code)
	}
	if code, body, err := call(f.client(t, "", &f.queenCert, ""), "POST", h.httpBase+"/v1/jobs", ct, job); err != nil || code != 200 {
		t.Errorf("the Queen's certificate: %d %s %v", code, body, err)
	}
	if code, _, _ := call(good, "POST", h.httpBase+"/v1/jobs", ct, job); code != 401 {
		t.Errorf("no certificate, no token: %d, want 401", code)
	}
	if code, body, _ := call(good, "POST", h.httpBase+"/v1/jobs", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + e2eToken}, job); code != 200 {
		t.Errorf("the token over TLS: %d %s", code, body)
	}

	// A plain HTTP client gets a clear JSON error.
	plain := "http://" + strings.TrimPrefix(h.httpBase, "https://")
	code, body, err := call(http.DefaultClient, "GET", plain+"/health", nil, "")
	if err != nil || code != 400 || !strings.Contains(body, "speaks HTTPS") || !isJSONError(body) {
		t.Errorf("plain HTTP to the TLS port: %d %q %v", code, body, err)
	}

	// Rotation under an open stream: the stream goes on, a new
	// connection sees the new certificate.
	stream := openTLSStream(t, good, h.httpBase+"/v1/heartbeats/stream")
	stream.event(t)
	next := f.ca.Issue(t, tlstest.Opts{Names: []string{"localhost", "127.0.0.1"}})
	next.Files(t, f.dir, "hive")
	fresh := f.client(t, "", nil, "")
	resp, err := fresh.Get(h.httpBase + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(next.Serial) != 0 {
		t.Errorf("a new connection after the rotation got serial %s, want %s", got, next.Serial)
	}
	for range 2 {
		stream.event(t)
	}
	_, metrics, _ := call(good, "GET", h.httpBase+"/metrics", map[string]string{"Authorization": "Bearer " + e2eToken}, "")
	if v, ok := metricValue(metrics, "hive_tls_cert_expiry_timestamp_seconds"); !ok || v < float64(time.Now().Unix()) {
		t.Errorf("hive_tls_cert_expiry_timestamp_seconds = %v (%v)", v, ok)
	}

	// hive watch over HTTPS, with the CA and the token from the environment.
	w := exec.Command(hiveBin, "watch", "--once", "--url", h.httpBase, "--ca-file", f.caFile)
	w.Env = append(w.Environ(), "HIVE_API_TOKEN="+e2eToken)
	if out, err := w.CombinedOutput(); err != nil || !strings.Contains(string(out), "HIVE") {
		t.Errorf("hive watch over HTTPS: %v\n%s", err, out)
	}

	// An outside client: curl with the CA, then with the Queen's
	// certificate for a job.
	if _, err := exec.LookPath("curl"); err != nil {
		t.Log("no curl here: the outside client is skipped")
		return
	}
	out, err := exec.Command("curl", "-sS", "--cacert", f.caFile, h.httpBase+"/health").CombinedOutput()
	if err != nil || string(out) != "ok" {
		t.Errorf("curl --cacert: %v %s", err, out)
	}
	queenCrt, queenKey := f.ca.Issue(t, tlstest.Opts{Names: []string{"queen.test"}, Client: true}).Files(t, f.dir, "queen")
	out, err = exec.Command("curl", "-sS", "--cacert", f.caFile, "--cert", queenCrt, "--key", queenKey,
		"-H", "Content-Type: application/json", "-d", job, h.httpBase+"/v1/jobs").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"job_id"`) {
		t.Errorf("curl --cert: %v %s", err, out)
	}
}

// Only the names in tls.client-allowed-sans authorise; and a hive does
// not start on an expired certificate.
func TestHTTPSAllowedNamesAndExpiredStart(t *testing.T) {
	f := newTLSFixture(t)
	h := startHiveEnv(t, []string{"HIVE_API_TOKEN=" + e2eToken, "HIVE_TLS_CLIENT_ALLOWED_SANS=queen.internal"},
		"--tls-cert-file", f.certFile, "--tls-key-file", f.keyFile, "--tls-client-ca-file", f.caFile)
	ct := map[string]string{"Content-Type": "application/json"}
	if code, _, err := call(f.client(t, "", &f.queenCert, ""), "POST", h.httpBase+"/v1/jobs", ct, `{"operation":"model_list","hive_id":"h"}`); err != nil || code != 401 {
		t.Errorf("a certificate of queen.test with only queen.internal allowed: %d %v", code, err)
	}
	crt, key := f.ca.Issue(t, tlstest.Opts{Names: []string{"localhost"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}).Files(t, f.dir, "old")
	out, err := exec.Command(hiveBin, "--port", "0", "--nats-listen", "", "--queen-url", "", "--tls-cert-file", crt, "--tls-key-file", key).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "expired") {
		t.Errorf("a hive on an expired certificate: %v %s", err, out)
	}
}

type tlsStream struct {
	resp *http.Response
	sc   *bufio.Scanner
}

func openTLSStream(t *testing.T, c *http.Client, url string) *tlsStream {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	c2 := *c
	c2.Timeout = 0
	resp, err := c2.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream over TLS: %v %v", err, resp)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &tlsStream{resp: resp, sc: bufio.NewScanner(resp.Body)}
}

func (s *tlsStream) event(t *testing.T) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for s.sc.Scan() {
			if strings.HasPrefix(s.sc.Text(), "data: ") {
				decodeStrict(t, strings.TrimPrefix(s.sc.Text(), "data: "))
				done <- nil
				return
			}
		}
		done <- fmt.Errorf("stream ended: %v", s.sc.Err())
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event over TLS in 10 s")
	}
}

// The NATS edge over TLS: the real nats CLI with --tlsca reads telemetry,
// a plaintext client is refused, and with a client CA a client without a
// certificate is refused too.
func TestNATSEdgeOverTLS(t *testing.T) {
	natsCLI, err := exec.LookPath("nats")
	if err != nil {
		t.Skip("nats CLI not on PATH (make tools installs it into bin/)")
	}
	f := newTLSFixture(t)
	h := startHiveEnv(t, []string{"HIVE_NATS_TLS_CERT_FILE=" + f.certFile, "HIVE_NATS_TLS_KEY_FILE=" + f.keyFile})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, natsCLI, "--server", h.natsURL, "--tlsca", f.caFile, "sub", wire.SubjectTelemetry, "--count", "1", "--raw").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"type":"telemetry"`) {
		t.Fatalf("nats sub over TLS: %v\n%s", err, out)
	}
	if nc, err := nats.Connect(h.natsURL, nats.NoReconnect(), nats.Timeout(3*time.Second)); err == nil {
		nc.Close()
		t.Error("a plaintext NATS client connected to the TLS edge")
	}

	h2 := startHiveEnv(t, []string{"HIVE_NATS_TLS_CERT_FILE=" + f.certFile, "HIVE_NATS_TLS_KEY_FILE=" + f.keyFile, "HIVE_NATS_TLS_CLIENT_CA_FILE=" + f.caFile})
	tc, _ := client.TLSConfig(f.caFile, "", "")
	if nc, err := nats.Connect(h2.natsURL, nats.Secure(tc), nats.NoReconnect(), nats.Timeout(3*time.Second)); err == nil {
		nc.Close()
		t.Error("a client without a certificate connected to an mTLS edge")
	}
	crt, key := f.ca.Issue(t, tlstest.Opts{Names: []string{"dash.test"}, Client: true}).Files(t, f.dir, "dash")
	tc, _ = client.TLSConfig(f.caFile, crt, key)
	nc, err := nats.Connect(h2.natsURL, nats.Secure(tc), nats.NoReconnect(), nats.Timeout(3*time.Second))
	if err != nil {
		t.Fatalf("a client with a certificate: %v", err)
	}
	defer nc.Close()
	sub, _ := nc.SubscribeSync(wire.SubjectTelemetry)
	if _, err := sub.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("telemetry over mTLS: %v", err)
	}
}
