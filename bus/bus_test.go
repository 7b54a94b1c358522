package bus_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestInProcessRoundTrip(t *testing.T) {
	b := bustest.Start(t)
	pub, err := b.Connect("pub")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := b.Connect("sub")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sub.SubscribeSync(wire.SubjectTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(wire.SubjectTelemetry, []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	m, err := s.NextMsg(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != `{"x":1}` {
		t.Fatalf("got %q", m.Data)
	}
	if b.ClientURL() != "" {
		t.Fatalf("no listener expected, got %q", b.ClientURL())
	}
}

// An external TCP client may read telemetry and nothing else, and cannot
// publish; the internal identity cannot be used over TCP.
func TestTCPObserverPermissions(t *testing.T) {
	b := bustest.StartConfig(t, bus.Config{Name: "test", Listen: "127.0.0.1:0"})
	url := b.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Fatalf("client url %q", url)
	}
	asyncErr := make(chan error, 4)
	ext, err := nats.Connect(url, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { asyncErr <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	s, err := ext.SubscribeSync(wire.SubjectTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Flush(); err != nil {
		t.Fatal(err)
	}
	in, err := b.Connect("collector")
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Publish(wire.SubjectTelemetry, []byte("t")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NextMsg(2 * time.Second); err != nil {
		t.Fatalf("observer did not get telemetry: %v", err)
	}

	if err := ext.Publish(wire.SubjectJobsCreate, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	_ = ext.Flush()
	if err := recvErr(asyncErr); err == nil || !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
		t.Fatalf("publish by observer: want permissions violation, got %v", err)
	}
	if _, err := ext.SubscribeSync(wire.SubjectJobsCreate); err != nil {
		t.Fatal(err)
	}
	_ = ext.Flush()
	if err := recvErr(asyncErr); err == nil || !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
		t.Fatalf("subscribe to jobs by observer: want permissions violation, got %v", err)
	}
}

func recvErr(c chan error) error {
	select {
	case err := <-c:
		return err
	case <-time.After(2 * time.Second):
		return nil
	}
}

func TestCloseTwiceAndConnectAfterClose(t *testing.T) {
	b, err := bus.Start(bus.Config{Name: "x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := b.Connect("m")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if !nc.IsClosed() {
		t.Fatal("bus.Close left a connection open")
	}
	if _, err := b.Connect("late"); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("connect after close: %v", err)
	}
}

func TestListenAddressErrors(t *testing.T) {
	for _, addr := range []string{"nonsense", "127.0.0.1:99999", "127.0.0.1:x"} {
		if _, err := bus.Start(bus.Config{Listen: addr}, nil); err == nil {
			t.Errorf("Start(%q) succeeded", addr)
		}
	}
	// A port in use is reported, not fatal to the process.
	b := bustest.StartConfig(t, bus.Config{Name: "a", Listen: "127.0.0.1:0"})
	used := strings.TrimPrefix(b.ClientURL(), "nats://")
	if _, err := bus.Start(bus.Config{Listen: used, ReadyTimeout: 500 * time.Millisecond}, nil); err == nil {
		t.Fatal("second bus on a used port started")
	}
}
