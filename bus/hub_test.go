package bus_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/tlsfiles/tlstest"
)

// startHub runs a plain nats-server with a client and a leafnode port, as
// the compose hub does.
func startHub(t *testing.T, leafPort int) *server.Server {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true}
	opts.LeafNode.Host = "127.0.0.1"
	opts.LeafNode.Port = leafPort
	hub, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	hub.Start()
	if !hub.ReadyForConnections(5 * time.Second) {
		t.Fatal("hub not ready")
	}
	return hub
}

func TestHubGetsTelemetryOnlyAndSendsNothingIn(t *testing.T) {
	hub := startHub(t, -1)
	defer func() { hub.Shutdown(); hub.WaitForShutdown() }()
	leaf := leafPort(t, hub)
	b := bustest.StartConfig(t, bus.Config{Name: "h1", Hub: "nats-leaf://127.0.0.1:" + strconv.Itoa(leaf), HubReconnect: 100 * time.Millisecond})
	bustest.WaitFor(t, 5*time.Second, func() error {
		if !b.HubConnected() {
			return fmt.Errorf("leafnode not up")
		}
		return nil
	})

	at, err := nats.Connect(hub.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Close()
	all, _ := at.SubscribeSync(">")
	_ = at.Flush()

	in, _ := b.Connect("modules")
	internal, _ := in.SubscribeSync("hive.>")
	if _, err := in.Subscribe(wire.SubjectJobsCreate, func(m *nats.Msg) { _ = m.Respond([]byte("leaked")) }); err != nil {
		t.Fatal(err)
	}
	_ = in.Flush()

	// The hub's interest reaches the hive asynchronously: publish until the
	// first telemetry arrives.
	bustest.WaitFor(t, 5*time.Second, func() error {
		_ = in.Publish(wire.SubjectJobsCreate+".x", []byte("private"))
		_ = in.Publish(wire.SubjectTelemetry, []byte("t"))
		m, err := all.NextMsg(100 * time.Millisecond)
		if err != nil {
			return err
		}
		if m.Subject != wire.SubjectTelemetry {
			return fmt.Errorf("hub saw %s", m.Subject)
		}
		return nil
	})
	_ = in.Publish(wire.SubjectWorkersStarted, []byte("private"))
	_ = in.Publish(wire.SubjectTelemetry, []byte("t2"))
	_ = in.Flush()
	for {
		m, err := all.NextMsg(300 * time.Millisecond)
		if err != nil {
			break
		}
		if m.Subject != wire.SubjectTelemetry && !strings.HasPrefix(m.Subject, "$") {
			t.Fatalf("hub saw non-exported subject %s", m.Subject)
		}
	}

	// Nothing from the hub enters: neither another hive's telemetry nor a
	// request aimed at this hive's modules.
	drain(internal)
	_ = at.Publish(wire.SubjectTelemetry, []byte("from another hive"))
	if _, err := at.Request(wire.SubjectJobsCreate, []byte("{}"), 300*time.Millisecond); err == nil {
		t.Fatal("a request from the hub reached the hive's jobs subject")
	}
	if m, err := internal.NextMsg(300 * time.Millisecond); err == nil {
		t.Fatalf("hub traffic entered the hive: %s %q", m.Subject, m.Data)
	}
}

func leafPort(t *testing.T, s *server.Server) int {
	t.Helper()
	v, err := s.Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	return v.LeafNode.Port
}

func drain(s *nats.Subscription) {
	for {
		if _, err := s.NextMsg(50 * time.Millisecond); err != nil {
			return
		}
	}
}

// The hive runs while the hub is away and resumes exporting when it is
// back on the same address.
func TestHubAwayAndBack(t *testing.T) {
	hub := startHub(t, -1)
	leaf := leafPort(t, hub)
	b := bustest.StartConfig(t, bus.Config{Name: "h1", Hub: "nats://127.0.0.1:" + strconv.Itoa(leaf), HubReconnect: 100 * time.Millisecond})
	bustest.WaitFor(t, 5*time.Second, func() error {
		if !b.HubConnected() {
			return fmt.Errorf("leafnode not up")
		}
		return nil
	})
	hub.Shutdown()
	hub.WaitForShutdown()
	bustest.WaitFor(t, 5*time.Second, func() error {
		if b.HubConnected() {
			return fmt.Errorf("still connected")
		}
		return nil
	})
	// Local traffic goes on without the hub.
	in, _ := b.Connect("m")
	sub, _ := in.SubscribeSync(wire.SubjectTelemetry)
	_ = in.Flush()
	_ = in.Publish(wire.SubjectTelemetry, []byte("local"))
	if _, err := sub.NextMsg(time.Second); err != nil {
		t.Fatalf("local delivery without a hub: %v", err)
	}

	hub2 := startHub(t, leaf)
	defer func() { hub2.Shutdown(); hub2.WaitForShutdown() }()
	at, err := nats.Connect(hub2.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Close()
	got, _ := at.SubscribeSync(wire.SubjectTelemetry)
	_ = at.Flush()
	bustest.WaitFor(t, 10*time.Second, func() error {
		_ = in.Publish(wire.SubjectTelemetry, []byte("again"))
		_, err := got.NextMsg(100 * time.Millisecond)
		return err
	})
}

func TestBadHubURL(t *testing.T) {
	for _, u := range []string{"::nope", "http://hub:7422", "nats-leaf://", "nats-leaf://a:7422,http://b:7422", "nats-leaf://a:7422,"} {
		if _, err := bus.Start(bus.Config{Hub: u}, nil); err == nil {
			t.Errorf("hub %q accepted", u)
		}
	}
}

// startHubNode runs one node of a hub cluster, routed to the given
// cluster URL (none for the first node).
func startHubNode(t *testing.T, name, routeTo string) *server.Server {
	t.Helper()
	opts := &server.Options{ServerName: name, Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true}
	opts.LeafNode.Host, opts.LeafNode.Port = "127.0.0.1", -1
	opts.Cluster.Name, opts.Cluster.Host, opts.Cluster.Port = "hub", "127.0.0.1", -1
	if routeTo != "" {
		u, _ := url.Parse(routeTo)
		opts.Routes = []*url.URL{u}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		t.Fatalf("hub node %s not ready", name)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// With every node of a two-node hub cluster listed, the hive moves to the
// surviving node when the one it is attached to goes, and a subscriber
// there sees its telemetry again.
func TestHubClusterFailover(t *testing.T) {
	a := startHubNode(t, "hub-a", "")
	b := startHubNode(t, "hub-b", fmt.Sprintf("nats://127.0.0.1:%d", a.ClusterAddr().Port))
	bustest.WaitFor(t, 10*time.Second, func() error {
		if a.NumRoutes() == 0 || b.NumRoutes() == 0 {
			return fmt.Errorf("cluster not formed")
		}
		return nil
	})
	hubs := fmt.Sprintf("nats-leaf://127.0.0.1:%d,nats-leaf://127.0.0.1:%d", leafPort(t, a), leafPort(t, b))
	h := bustest.StartConfig(t, bus.Config{Name: "h1", Hub: hubs, HubReconnect: 100 * time.Millisecond})
	in, _ := h.Connect("collector")
	seenAt := func(s *server.Server) error {
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			return err
		}
		defer nc.Close()
		sub, _ := nc.SubscribeSync(wire.SubjectTelemetry)
		_ = nc.Flush()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			_ = in.Publish(wire.SubjectTelemetry, []byte("t"))
			if _, err := sub.NextMsg(100 * time.Millisecond); err == nil {
				return nil
			}
		}
		return fmt.Errorf("no telemetry at %s", s.Name())
	}
	// Which node is the hive on? The other survives.
	var attached, survivor *server.Server
	bustest.WaitFor(t, 10*time.Second, func() error {
		switch {
		case a.NumLeafNodes() > 0:
			attached, survivor = a, b
		case b.NumLeafNodes() > 0:
			attached, survivor = b, a
		default:
			return fmt.Errorf("the hive is on no node")
		}
		return nil
	})
	if err := seenAt(survivor); err != nil {
		t.Fatalf("before the failover, through the route: %v", err)
	}
	attached.Shutdown()
	attached.WaitForShutdown()
	start := time.Now()
	if err := seenAt(survivor); err != nil {
		t.Fatalf("after the node the hive was on went: %v", err)
	}
	t.Logf("telemetry back at the surviving node %v after the other stopped", time.Since(start).Round(time.Millisecond))
	if survivor.NumLeafNodes() != 1 {
		t.Fatalf("the hive is not attached to the survivor (%d leafnodes)", survivor.NumLeafNodes())
	}
}

// The hub gets each message on hive.telemetry, as before, and on
// hive.telemetry.<hive id>, where a stream keeps one hive's history; each
// only while the hub wants it.
func TestHubGetsPerHiveSubject(t *testing.T) {
	hub := startHub(t, -1)
	defer func() { hub.Shutdown(); hub.WaitForShutdown() }()
	b := bustest.StartConfig(t, bus.Config{Name: "gpu-07.dc1", Hub: "nats-leaf://127.0.0.1:" + strconv.Itoa(leafPort(t, hub)),
		HubReconnect: 100 * time.Millisecond, HubHiveID: "gpu-07.dc1"})
	at, err := nats.Connect(hub.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Close()
	perHive, _ := at.SubscribeSync("hive.telemetry.>")
	plain, _ := at.SubscribeSync(wire.SubjectTelemetry)
	_ = at.Flush()
	in, _ := b.Connect("modules")
	n := 0
	bustest.WaitFor(t, 5*time.Second, func() error {
		n++
		_ = in.Publish(wire.SubjectTelemetry, []byte("t"+strconv.Itoa(n)))
		if _, err := perHive.NextMsg(100 * time.Millisecond); err != nil {
			return fmt.Errorf("per-hive: %w", err)
		}
		if _, err := plain.NextMsg(100 * time.Millisecond); err != nil {
			return fmt.Errorf("plain: %w", err)
		}
		return nil
	})
	_ = in.Publish(wire.SubjectTelemetry, []byte("last"))
	for sub, want := range map[*nats.Subscription]string{perHive: "hive.telemetry.gpu-07.dc1", plain: wire.SubjectTelemetry} {
		for {
			m, err := sub.NextMsg(2 * time.Second)
			if err != nil {
				t.Fatalf("%s: %v", want, err)
			}
			if m.Subject != want {
				t.Fatalf("got %s, want %s", m.Subject, want)
			}
			if string(m.Data) == "last" {
				break
			}
		}
	}
}

// An event over wire.MaxHubEventBytes reaches the hub's per-hive subject
// cut to fit the history stream's max_msg_size (workers with the highest
// PIDs left out, and counted); hive.telemetry carries it whole, and a
// small event crosses unchanged.
func TestHubCopyWithinItsBound(t *testing.T) {
	hub := startHub(t, -1)
	defer func() { hub.Shutdown(); hub.WaitForShutdown() }()
	b := bustest.StartConfig(t, bus.Config{Name: "fat", Hub: "nats-leaf://127.0.0.1:" + strconv.Itoa(leafPort(t, hub)),
		HubReconnect: 100 * time.Millisecond, HubHiveID: "fat"})
	at, err := nats.Connect(hub.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Close()
	perHive, _ := at.SubscribeSync("hive.telemetry.fat")
	plain, _ := at.SubscribeSync(wire.SubjectTelemetry)
	_ = at.Flush()
	model := strings.Repeat("m", wire.MaxModelBytes)
	ev := wire.TelemetryEvent{Type: "telemetry", HiveID: "fat", Workers: []wire.ProcessStats{}, Node: wire.Node{GPUs: []wire.NodeGPU{}}}
	for pid := uint32(1); pid <= 400; pid++ {
		ev.Workers = append(ev.Workers, wire.ProcessStats{PID: pid, Model: &model, GPUIndices: []int{}})
	}
	fat, _ := json.Marshal(ev)
	in, _ := b.Connect("modules")
	// The hub's interest in the two subjects reaches the leafnode one
	// after the other: publish until one of each has crossed.
	var m, whole *nats.Msg
	bustest.WaitFor(t, 10*time.Second, func() error {
		_ = in.Publish(wire.SubjectTelemetry, fat)
		if m == nil {
			m, _ = perHive.NextMsg(200 * time.Millisecond)
		}
		if whole == nil {
			whole, _ = plain.NextMsg(200 * time.Millisecond)
		}
		if m == nil || whole == nil {
			return fmt.Errorf("at the hub: per-hive copy %v, hive.telemetry %v", m != nil, whole != nil)
		}
		return nil
	})
	var got wire.TelemetryEvent
	if len(m.Data) > wire.MaxHubEventBytes || json.Unmarshal(m.Data, &got) != nil || got.WorkersOmitted != 400-len(got.Workers) || len(got.Workers) == 0 {
		t.Fatalf("hub copy: %d bytes, %d workers, %d omitted", len(m.Data), len(got.Workers), got.WorkersOmitted)
	}
	if len(whole.Data) != len(fat) {
		t.Fatalf("hive.telemetry carried %d bytes, want the whole %d", len(whole.Data), len(fat))
	}
	if b.HubTrimmed() == 0 {
		t.Error("trimmed copies not counted")
	}
}

// The leafnode to a TLS hub: the hive verifies the hub with its CA and
// shows its certificate when asked; a hive without TLS never attaches.
func TestHubOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "hub CA")
	hubCert, hubKey := ca.Issue(t, tlstest.Opts{Names: []string{"127.0.0.1", "localhost"}}).Files(t, dir, "hub")
	hiveCert, hiveKey := ca.Issue(t, tlstest.Opts{Names: []string{"hive-1"}, Client: true}).Files(t, dir, "hive")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	pair, err := tls.LoadX509KeyPair(hubCert, hubKey)
	if err != nil {
		t.Fatal(err)
	}
	opts := &server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true}
	opts.LeafNode.Host, opts.LeafNode.Port = "127.0.0.1", -1
	opts.LeafNode.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	opts.LeafNode.TLSTimeout = 2
	hub, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	hub.Start()
	defer func() { hub.Shutdown(); hub.WaitForShutdown() }()
	if !hub.ReadyForConnections(5 * time.Second) {
		t.Fatal("hub not ready")
	}
	url := "tls://127.0.0.1:" + strconv.Itoa(leafPort(t, hub))
	client, err := tls.LoadX509KeyPair(hiveCert, hiveKey)
	if err != nil {
		t.Fatal(err)
	}
	b := bustest.StartConfig(t, bus.Config{Name: "hive-1", Hub: url, HubReconnect: 100 * time.Millisecond,
		HubTLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{client}, MinVersion: tls.VersionTLS12}})
	bustest.WaitFor(t, 10*time.Second, func() error {
		if !b.HubConnected() {
			return fmt.Errorf("leafnode over TLS not up")
		}
		return nil
	})
	at, err := nats.Connect(hub.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Close()
	sub, _ := at.SubscribeSync(wire.SubjectTelemetry)
	_ = at.Flush()
	in, _ := b.Connect("modules")
	bustest.WaitFor(t, 5*time.Second, func() error {
		_ = in.Publish(wire.SubjectTelemetry, []byte("over tls"))
		_, err := sub.NextMsg(200 * time.Millisecond)
		return err
	})
	// Without the hive's certificate the hub refuses the leafnode.
	plain := bustest.StartConfig(t, bus.Config{Name: "hive-2", Hub: url, HubReconnect: 100 * time.Millisecond,
		HubTLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})
	// Absence cannot be polled for: a second is ten reconnect attempts,
	// and a busy machine can only make this pass wrongly, never fail.
	time.Sleep(time.Second)
	if plain.HubConnected() {
		t.Error("a hive without a client certificate attached to the mTLS hub")
	}
}
