package bus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
)

// ingestHubConf is deployments/hub.conf's ingest path in one server:
// hives publish as "hive" in INGEST, which reaches the history stream of
// TELEMETRY through a service import and nothing else.
const ingestHubConf = `
host: 127.0.0.1
port: %d
jetstream { store_dir: %q }
accounts {
  INGEST {
    imports: [ { service: { account: TELEMETRY, subject: "hive.telemetry.*" } } ]
    users: [ { user: hive, password: pw,
      permissions: { publish: { allow: ["hive.telemetry.*"] }, subscribe: { allow: ["_INBOX.>"] } } } ]
  }
  TELEMETRY {
    jetstream: enabled
    exports: [ { service: "hive.telemetry.*", accounts: [INGEST] } ]
    users: [ { user: admin, password: pw } ]
  }
}
`

// ingestHub is a hub that can be stopped and started again on its port
// with its store.
type ingestHub struct {
	t    *testing.T
	dir  string
	port int
	ns   *server.Server
}

func startIngestHub(t *testing.T) *ingestHub {
	h := &ingestHub{t: t, dir: t.TempDir(), port: -1}
	h.start()
	t.Cleanup(h.stop)
	nc := h.admin()
	defer nc.Close()
	js, _ := jetstream.New(nc)
	_, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: bus.HubHistoryStream,
		Subjects: []string{"hive.telemetry.>"}, Storage: jetstream.FileStorage, Duplicates: time.Minute,
		MaxMsgSize: wire.MaxHubEventBytes}) // as deployments/hub-stream.json
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *ingestHub) start() {
	h.t.Helper()
	conf := filepath.Join(h.dir, "hub.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, ingestHubConf, h.port, filepath.Join(h.dir, "js")), 0o600); err != nil {
		h.t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		h.t.Fatal(err)
	}
	opts.NoSigs, opts.NoLog = true, true
	if h.ns, err = server.NewServer(opts); err != nil {
		h.t.Fatal(err)
	}
	h.ns.Start()
	if !h.ns.ReadyForConnections(10 * time.Second) {
		h.t.Fatal("hub not ready")
	}
	// Started again, it comes back on the port its hives know.
	h.port = h.ns.Addr().(*net.TCPAddr).Port
}

func (h *ingestHub) stop() {
	if h.ns != nil {
		h.ns.Shutdown()
		h.ns.WaitForShutdown()
		h.ns = nil
	}
}

func (h *ingestHub) admin() *nats.Conn {
	h.t.Helper()
	nc, err := nats.Connect(h.ns.ClientURL(), nats.UserInfo("admin", "pw"))
	if err != nil {
		h.t.Fatal(err)
	}
	return nc
}

func (h *ingestHub) ingestURL() string { return "nats://hive:pw@127.0.0.1:" + strconv.Itoa(h.port) }

// history is the hub's stored events of hive id, in stream order.
func (h *ingestHub) history(id string) ([]wire.TelemetryEvent, error) {
	nc := h.admin()
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, bus.HubHistoryStream)
	if err != nil {
		return nil, err
	}
	var out []wire.TelemetryEvent
	for seq := uint64(1); ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject("hive.telemetry."+id))
		if err != nil {
			return out, nil //nolint:nilerr // not found: the end
		}
		// The hub's copy carries its id and nothing of the hive's store.
		if len(m.Header) != 1 || m.Header.Get(jetstream.MsgIDHeader) == "" {
			return nil, fmt.Errorf("stored headers %v, want Nats-Msg-Id alone", m.Header)
		}
		var ev wire.TelemetryEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			return nil, err
		}
		out = append(out, ev)
		seq = m.Sequence + 1
	}
}

// publishEvents publishes n telemetry events of hive id as the collector
// does, their timestamps from start a millisecond apart.
func publishEvents(t *testing.T, c *bus.Conn, id string, start time.Time, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		ev := wire.TelemetryEvent{Type: "telemetry", HiveID: id, Workers: []wire.ProcessStats{},
			HiveInfo:  wire.HiveInfo{Hostname: strings.Repeat("h", 4096)},
			Timestamp: wire.SSETimestamp(start.Add(time.Duration(i) * time.Millisecond))}
		b, _ := json.Marshal(ev)
		if err := c.Publish(wire.SubjectTelemetry, b); err != nil {
			t.Fatal(err)
		}
	}
}

// checkHistory fails unless the hub holds exactly events 0..n-1 of id,
// in order, once each.
func checkHistory(t *testing.T, h *ingestHub, id string, start time.Time, n int) {
	t.Helper()
	var got []wire.TelemetryEvent
	bustest.WaitFor(t, 20*time.Second, func() error {
		var err error
		if got, err = h.history(id); err != nil || len(got) < n {
			return fmt.Errorf("hub holds %d of %d events (%v)", len(got), n, err)
		}
		return nil
	})
	if len(got) != n {
		t.Fatalf("hub holds %d events, want %d (duplicates?)", len(got), n)
	}
	for i, ev := range got {
		if want := wire.SSETimestamp(start.Add(time.Duration(i) * time.Millisecond)); ev.Timestamp != want {
			t.Fatalf("event %d is %s, want %s: out of order or missing", i, ev.Timestamp, want)
		}
	}
}

// A hub that goes away, and a hive restarted while it is away, lose
// nothing: the events stored meanwhile reach the hub after it is back,
// in order, once each.
func TestOutboxForwardsAcrossHubOutageAndRestart(t *testing.T) {
	hub := startIngestHub(t)
	store := t.TempDir()
	cfg := bus.Config{Name: "h1", HubHiveID: "h1", HubIngest: hub.ingestURL(), Store: bus.StoreConfig{Dir: store, Rate: 1000}}
	start := time.Now().Truncate(time.Second)

	b := bustest.StartConfig(t, cfg)
	c, err := b.Connect("collector")
	if err != nil {
		t.Fatal(err)
	}
	publishEvents(t, c, "h1", start, 0, 10)
	checkHistory(t, hub, "h1", start, 10)

	hub.stop()
	publishEvents(t, c, "h1", start, 10, 10)
	bustest.WaitFor(t, 10*time.Second, func() error {
		if n := b.HubBacklog(); n != 10 {
			return fmt.Errorf("backlog %d, want 10", n)
		}
		return nil
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b2 := bustest.StartConfig(t, cfg)
	if n := b2.HubBacklog(); n != 10 {
		t.Errorf("after a restart the backlog is %d, want the 10 kept", n)
	}
	c2, err := b2.Connect("collector")
	if err != nil {
		t.Fatal(err)
	}
	publishEvents(t, c2, "h1", start, 20, 5)
	hub.start()
	checkHistory(t, hub, "h1", start, 25)
	bustest.WaitFor(t, 5*time.Second, func() error {
		if n := b2.HubBacklog(); n != 0 {
			return fmt.Errorf("backlog %d after the hub took everything", n)
		}
		return nil
	})
}

// A second hive on the same store is refused, naming the reason.
func TestOutboxStoreIsHeldByOneHive(t *testing.T) {
	hub := startIngestHub(t)
	cfg := bus.Config{Name: "h1", HubHiveID: "h1", HubIngest: hub.ingestURL(), Store: bus.StoreConfig{Dir: t.TempDir()}}
	bustest.StartConfig(t, cfg)
	b, err := bus.Start(cfg, bustest.Logger(t))
	if err == nil {
		_ = b.Close()
		t.Fatal("a second bus opened a held store")
	}
	if !strings.Contains(err.Error(), "held by another hive") {
		t.Errorf("error %q does not say the store is held", err)
	}
}

// hubDropped is hive_hub_dropped_total{reason} of b.
func hubDropped(t *testing.T, b *bus.Bus, reason string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := b.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "hive_hub_dropped_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no hive_hub_dropped_total{reason=%q}", reason)
	return 0
}

// While the hub is away the store keeps within its bounds, the oldest
// events going first, each counted by its reason; what is left reaches
// the hub in order once it is back.
func TestOutboxBoundsDropTheOldest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		store  bus.StoreConfig
		events int
		pause  time.Duration // between the first events and the last 5
		reason string
	}{
		// The events are padded to 4 KiB, so that 30 pass the bound;
		// the bridge's queue (64) takes them all at once.
		{name: "bytes", store: bus.StoreConfig{MaxBytes: 32 << 10}, events: 30, reason: "bytes"},
		{name: "age", store: bus.StoreConfig{MaxAge: 5 * time.Second}, events: 20, pause: 6 * time.Second, reason: "age"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hub := startIngestHub(t)
			tc.store.Dir, tc.store.Rate = t.TempDir(), 1000
			b := bustest.StartConfig(t, bus.Config{Name: "h1", HubHiveID: "h1", HubIngest: hub.ingestURL(), Store: tc.store})
			c, err := b.Connect("collector")
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now().Truncate(time.Second)
			publishEvents(t, c, "h1", start, 0, 1)
			checkHistory(t, hub, "h1", start, 1)
			hub.stop()
			publishEvents(t, c, "h1", start, 1, tc.events)
			time.Sleep(tc.pause)
			publishEvents(t, c, "h1", start, 1+tc.events, 5)
			if tc.store.MaxBytes > 0 {
				bustest.WaitFor(t, 10*time.Second, func() error {
					if n := b.HubBacklog(); n >= uint64(tc.events+5) || n == 0 {
						return fmt.Errorf("backlog %d, want fewer than %d kept", n, tc.events+5)
					}
					return nil
				})
				if n := bustest.TreeBytes(t, tc.store.Dir); n > tc.store.MaxBytes+64<<10 {
					t.Errorf("the store holds %d bytes, bound %d", n, tc.store.MaxBytes)
				}
			}
			hub.start()
			var got []wire.TelemetryEvent
			bustest.WaitFor(t, 20*time.Second, func() error {
				if b.HubBacklog() != 0 {
					return fmt.Errorf("backlog %d", b.HubBacklog())
				}
				got, err = hub.history("h1")
				return err
			})
			dropped := hubDropped(t, b, tc.reason)
			if dropped == 0 || int(dropped)+len(got) != 1+tc.events+5 {
				t.Errorf("%v dropped (%s) and %d in the history, want %d in all, some dropped", dropped, tc.reason, len(got), 1+tc.events+5)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Timestamp <= got[i-1].Timestamp {
					t.Fatalf("history out of order at %d: %s after %s", i, got[i].Timestamp, got[i-1].Timestamp)
				}
			}
			if want := wire.SSETimestamp(start.Add(time.Duration(tc.events+5) * time.Millisecond)); len(got) == 0 || got[len(got)-1].Timestamp != want {
				t.Errorf("the newest event did not reach the hub")
			}
		})
	}
}

// nats.hub-ingest without a store or a hive id is refused at start, with
// the reason.
func TestOutboxNeedsAStoreAndAnID(t *testing.T) {
	for _, tc := range []struct {
		cfg  bus.Config
		want string
	}{
		{bus.Config{Name: "h1", HubHiveID: "h1", HubIngest: "nats://127.0.0.1:1"}, "state dir"},
		{bus.Config{Name: "h1", HubIngest: "nats://127.0.0.1:1", Store: bus.StoreConfig{Dir: t.TempDir()}}, "hive's id"},
	} {
		b, err := bus.Start(tc.cfg, bustest.Logger(t))
		if err == nil {
			_ = b.Close()
			t.Fatalf("%+v started", tc.cfg)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %q does not name the %s", err, tc.want)
		}
	}
}

// An event past the hub's bound is cut to fit with its headers: the
// hub's stream (max_msg_size 64 KiB, headers counted) takes it.
func TestOutboxBigEventFitsTheHub(t *testing.T) {
	hub := startIngestHub(t)
	b := bustest.StartConfig(t, bus.Config{Name: "h1", HubHiveID: "h1", HubIngest: hub.ingestURL(), Store: bus.StoreConfig{Dir: t.TempDir()}})
	c, err := b.Connect("collector")
	if err != nil {
		t.Fatal(err)
	}
	ev := wire.TelemetryEvent{Type: "telemetry", HiveID: "h1", Timestamp: wire.SSETimestamp(time.Now())}
	for i := range 400 {
		ev.Workers = append(ev.Workers, wire.ProcessStats{PID: uint32(1000 + i), Group: strings.Repeat("g", 200), Instance: "9000"})
	}
	// The hard case: a body that, cut to the stream's bound alone, would
	// fill it to within a header's size.
	for n := range 600 {
		ev.HiveInfo.Hostname = strings.Repeat("h", n)
		if b, _, err := wire.FitEvent(ev, wire.MaxHubEventBytes); err == nil && len(b) > wire.MaxHubEventBytes-40 {
			break
		}
	}
	data, _ := json.Marshal(ev)
	if len(data) <= wire.MaxHubEventBytes {
		t.Fatalf("the event is %d bytes: not past the bound", len(data))
	}
	if err := c.Publish(wire.SubjectTelemetry, data); err != nil {
		t.Fatal(err)
	}
	var got []wire.TelemetryEvent
	bustest.WaitFor(t, 10*time.Second, func() error {
		if got, err = hub.history("h1"); err != nil || len(got) != 1 {
			return fmt.Errorf("history %d events, %v; dropped (hub_refused) %v", len(got), err, hubDropped(t, b, "hub_refused"))
		}
		return nil
	})
	if got[0].WorkersOmitted == 0 || len(got[0].Workers) == 0 {
		t.Errorf("stored event: %d workers, %d omitted", len(got[0].Workers), got[0].WorkersOmitted)
	}
}
