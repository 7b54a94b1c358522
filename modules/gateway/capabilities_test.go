package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rbee/hive/bus/wire"
)

const capsBody = `{"devices":[{"id":"GPU-0","name":"NVIDIA A10","device_type":"gpu","vram_gb":22,"compute_capability":"8.6"},{"id":"CPU-0","name":"CPU (2 cores)","device_type":"cpu","vram_gb":23,"compute_capability":null}]}`

func get(t *testing.T, u string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Content-Type")
}

func TestCapabilitiesRoutes(t *testing.T) {
	g := startGateway(t, Config{})
	if code, body, _ := get(t, g.base+"/capabilities"); code != 503 || !strings.Contains(body, `"error"`) {
		t.Fatalf("without the capabilities module: %d %s", code, body)
	}
	if _, err := g.pub.Subscribe(wire.SubjectCapabilitiesGet, func(m *nats.Msg) { _ = m.Respond([]byte(capsBody)) }); err != nil {
		t.Fatal(err)
	}
	// A stand-in for discovery: it accepts every change it is asked for.
	queens, err := g.pub.SubscribeSync(wire.SubjectDiscoveryQueen)
	if err != nil {
		t.Fatal(err)
	}
	accept := func() {
		m, err := queens.NextMsg(5 * time.Second)
		if err != nil {
			t.Error(err)
			return
		}
		var q wire.QueenURL
		_ = json.Unmarshal(m.Data, &q)
		if q.URL != "http://queen.example:7833/" || !q.Authorized {
			t.Errorf("asked discovery %s; want the URL, authorized (loopback, no token)", m.Data)
		}
		b, _ := json.Marshal(wire.QueenAccepted{URL: q.URL, Status: "started"})
		_ = m.Respond(b)
	}
	_ = g.pub.Flush()
	for _, path := range []string{"/capabilities", "/v1/capabilities", "/capabilities?other=1"} {
		code, body, ctype := get(t, g.base+path)
		if code != 200 || body != capsBody || ctype != "application/json" {
			t.Fatalf("%s: %d %s %s", path, code, ctype, body)
		}
	}
	if m, err := queens.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("a queen URL was published without ?queen_url: %s", m.Data)
	}

	done := make(chan struct{})
	go func() { defer close(done); accept() }()
	code, body, _ := get(t, g.base+"/capabilities?queen_url="+url.QueryEscape("http://queen.example:7833/"))
	<-done
	if code != 200 || body != capsBody {
		t.Fatalf("valid queen_url: %d %s", code, body)
	}

	for _, bad := range []string{"queen_url=", "queen_url=localhost%3A7833", "queen_url=ftp%3A%2F%2Fq%2F", "queen_url=http%3A%2F%2F",
		"queen_url=%zz", "queen_url=http%3A%2F%2Fq%3Fa%3Db", "queen_url=%2Fv1%2Fx"} {
		code, body, ctype := get(t, g.base+"/v1/capabilities?"+bad)
		var e apiError
		if code != 400 || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" || !strings.HasPrefix(ctype, "application/json") {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
	if m, err := queens.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("an invalid queen URL was published: %s", m.Data)
	}
}
