package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testGateway struct {
	*Gateway
	pub  *bus.Conn
	base string
	reg  *prometheus.Registry // the gateway's metrics, served on /metrics
	stop func()               // ends Run, as the hive's shutdown does
}

// startGateway runs a gateway on a real in-process bus and returns it with
// a connection to publish telemetry on.
func startGateway(t *testing.T, cfg Config) *testGateway {
	t.Helper()
	b := bustest.Start(t)
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.HiveID == "" {
		cfg.HiveID = "h1"
	}
	if cfg.FirstEventID == 0 {
		cfg.FirstEventID = 1 // ids the cases below can name
	}
	reg := prometheus.NewPedanticRegistry()
	if cfg.Metrics == nil {
		cfg.Metrics = reg
	}
	g, err := New(cfg, b, bustest.Logger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	stop := bustest.RunModule(t, "gateway", g.Run, g.Ready())
	pub, err := b.Connect("test-pub")
	if err != nil {
		t.Fatal(err)
	}
	return &testGateway{Gateway: g, reg: reg, pub: pub, base: "http://" + g.Addr().String(), stop: stop}
}

// publish sends a telemetry payload and waits until the fanout has it.
func (g *testGateway) publish(t *testing.T, payload string) {
	t.Helper()
	before := g.fanout.published.Load()
	msg := &nats.Msg{Subject: wire.SubjectTelemetry, Data: []byte(payload), Header: nats.Header{}}
	msg.Header.Set(wire.HeaderHiveID, g.cfg.HiveID)
	if err := g.pub.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	bustest.WaitFor(t, 5*time.Second, func() error {
		if g.fanout.published.Load() <= before {
			return fmt.Errorf("fanout has not seen the event")
		}
		return nil
	})
}

type sseEvent struct {
	ID, Event, Data, Retry string
	Comments               []string
	At                     time.Time
}

// sseStream is an open SSE response parsed event by event.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
	done   chan struct{}
}

func openStream(t *testing.T, url string, header map[string]string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &sseStream{resp: resp, events: make(chan sseEvent, 1024), cancel: cancel, done: make(chan struct{})}
	go s.read()
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) read() {
	defer close(s.done)
	defer close(s.events)
	sc := bufio.NewScanner(s.resp.Body)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	var ev sseEvent
	dirty := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if dirty {
				ev.At = time.Now()
				s.events <- ev
			}
			ev, dirty = sseEvent{}, false
			continue
		case strings.HasPrefix(line, ":"):
			ev.Comments = append(ev.Comments, strings.TrimSpace(line[1:]))
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Event = line[7:]
		case strings.HasPrefix(line, "retry: "):
			ev.Retry = line[7:]
		case strings.HasPrefix(line, "data: "):
			if ev.Data != "" {
				ev.Data += "\n"
			}
			ev.Data += line[6:]
		}
		dirty = true
	}
}

func (s *sseStream) close() {
	s.cancel()
	_ = s.resp.Body.Close()
	<-s.done
}

// next returns the next event with data, skipping retry/comment frames.
func (s *sseStream) next(t *testing.T) sseEvent {
	t.Helper()
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatal("stream ended")
			}
			if ev.Data != "" {
				return ev
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5s")
		}
	}
}

// preamble returns the frames sent before the first data event.
func (s *sseStream) preamble(t *testing.T) (retry string, comments []string, first sseEvent) {
	t.Helper()
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatal("stream ended")
			}
			if ev.Retry != "" {
				retry = ev.Retry
			}
			comments = append(comments, ev.Comments...)
			if ev.Data != "" {
				return retry, comments, ev
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5s")
		}
	}
}

func payload(n int) string { return fmt.Sprintf(`{"type":"telemetry","n":%d}`, n) }
