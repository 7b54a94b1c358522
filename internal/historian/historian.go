// Package historian serves a hub's history (stream HIVE_TELEMETRY) to
// anyone who asks, fairly. JetStream's direct get has no bound per
// client: one client may pipeline requests for 70 MB each, every one
// queued on the stream's one delivery goroutine per node, and four such
// clients kept another client's 600-event read from finishing at all.
// Public clients therefore do not reach JetStream; they ask a historian
// on wire.SubjectHistoryGet (deployments/hub.conf), in JetStream's own direct
// get format, and the historian asks JetStream with bounds: a batch of at
// most MaxBatch messages and MaxBytes, PerClient requests in flight per
// client address and InFlight in all. A request that finds no free slot
// waits, one per client address, and the free slots go to the waiting
// addresses in turn; a client with one already waiting is answered at
// once with status 429, which it retries after a pause. The answer is
// JetStream's messages, forwarded as they are.
package historian

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive/bus/wire"
)

// queueGroup shares the requests among a cluster's historians.
const queueGroup = "historians"

// Config bounds what the historian does for a client.
type Config struct {
	// Stream is the history stream, HIVE_TELEMETRY by default.
	Stream string
	// PerClient is how many requests of one client address may be in
	// flight at this historian (1); InFlight in all (2). A hub runs one
	// historian per node, so a cluster of three takes three requests of
	// one address and six in all: what an honest request may wait behind
	// is six batches (on a two-core machine a 600-event read under a flood
	// of four clients took 0.6-0.7 s, 0.06 s without).
	PerClient, InFlight int
	// MaxBatch and MaxBytes cap each request's batch (256, 512 KiB).
	MaxBatch, MaxBytes int
	// Timeout bounds the wait for each message from JetStream (5 s).
	Timeout time.Duration
}

// DefaultConfig is what New fills zero fields from.
func DefaultConfig() Config {
	return Config{Stream: "HIVE_TELEMETRY", PerClient: 1, InFlight: 2, MaxBatch: 256, MaxBytes: 512 << 10, Timeout: 5 * time.Second}
}

// Historian answers history requests on one connection to the hub.
type Historian struct {
	cfg Config
	nc  *nats.Conn
	log *slog.Logger
	ctx context.Context
	wg  sync.WaitGroup

	mu      sync.Mutex
	clients map[string]*client // by client address
	ring    []string           // addresses with a request waiting, served in turn
	total   int                // requests in flight

	served, refused atomic.Uint64
	// serveFn serves one admitted request (serve; tests replace it).
	serveFn func(ctx context.Context, reply string, req request)
}

// client is one address's requests: in flight, and the one waiting for a
// free slot.
type client struct {
	inFlight int
	waiting  *pending
}

type pending struct {
	reply string
	req   request
}

// New makes a historian on nc, which the caller connected (the historian
// user of hub.conf) and closes.
func New(cfg Config, nc *nats.Conn, log *slog.Logger) *Historian {
	def := DefaultConfig()
	cfg.Stream = cmp.Or(cfg.Stream, def.Stream)
	cfg.PerClient, cfg.InFlight = cmp.Or(cfg.PerClient, def.PerClient), cmp.Or(cfg.InFlight, def.InFlight)
	cfg.MaxBatch, cfg.MaxBytes = cmp.Or(cfg.MaxBatch, def.MaxBatch), cmp.Or(cfg.MaxBytes, def.MaxBytes)
	cfg.Timeout = cmp.Or(cfg.Timeout, def.Timeout)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Historian{cfg: cfg, nc: nc, log: log, clients: map[string]*client{}}
	h.serveFn = h.serve
	return h
}

// Run answers requests until ctx ends, then waits for those in flight.
func (h *Historian) Run(ctx context.Context) error {
	h.ctx = ctx
	defer h.wg.Wait()
	sub, err := h.nc.QueueSubscribe(wire.SubjectHistoryGet, queueGroup, func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		if err := h.admit(m); err != nil {
			h.refused.Add(1)
			_ = m.RespondMsg(status(err))
		}
	})
	if err != nil {
		return fmt.Errorf("historian: subscribe: %w", err)
	}
	// A flood is answered at once (429), so a large pending buffer is
	// what keeps an honest request from being dropped meanwhile.
	_ = sub.SetPendingLimits(1<<16, 64<<20)
	<-ctx.Done()
	err = sub.Drain()
	h.mu.Lock()
	h.ring = nil // what waits is not served
	h.mu.Unlock()
	return err
}

// Stats are the requests served and refused so far.
func (h *Historian) Stats() (served, refused uint64) { return h.served.Load(), h.refused.Load() }

// request is the part of JetStream's direct get request a public client
// may use: one hive's subject, from a sequence or a time, or its last
// message.
type request struct {
	Seq       uint64     `json:"seq,omitempty"`
	LastFor   string     `json:"last_by_subj,omitempty"`
	NextFor   string     `json:"next_by_subj,omitempty"`
	Batch     int        `json:"batch,omitempty"`
	MaxBytes  int        `json:"max_bytes,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
}

var (
	errBusy       = errors.New("429 Too Many Requests")
	errBadRequest = errors.New("400 Bad Request")
)

// admit decodes m and checks it, then serves it at once if a slot is
// free, or keeps it as its client's one waiting request: slots are handed
// out to the waiting clients in turn, so a client that asks without
// pause gets no more of them than one that asks once. A client that has
// its requests in flight and one waiting is told 429.
func (h *Historian) admit(m *nats.Msg) error {
	req, err := h.parse(m.Data)
	if err != nil {
		return err
	}
	key := clientKey(m)
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.clients[key]
	if c == nil {
		if len(h.clients) >= maxClients {
			return errBusy
		}
		c = &client{}
		h.clients[key] = c
	}
	p := &pending{reply: m.Reply, req: req}
	switch {
	case c.inFlight < h.cfg.PerClient && h.total < h.cfg.InFlight:
		h.startLocked(key, c, p)
	case c.waiting == nil:
		c.waiting = p
		h.ring = append(h.ring, key)
	default:
		if c.inFlight == 0 && c.waiting == nil {
			delete(h.clients, key)
		}
		return errBusy
	}
	return nil
}

// parse decodes a request and caps it.
func (h *Historian) parse(data []byte) (request, error) {
	var req request
	if len(data) > 4096 || json.Unmarshal(data, &req) != nil {
		return req, errBadRequest
	}
	subj := cmp.Or(req.NextFor, req.LastFor)
	if !oneHive(subj) || (req.NextFor != "" && req.LastFor != "") {
		return req, errBadRequest
	}
	req.Batch = min(max(req.Batch, 0), h.cfg.MaxBatch)
	if req.MaxBytes <= 0 || req.MaxBytes > h.cfg.MaxBytes {
		req.MaxBytes = h.cfg.MaxBytes
	}
	if req.LastFor != "" {
		req.Batch, req.MaxBytes = 0, 0 // JetStream takes neither with last_by_subj
	}
	return req, nil
}

// startLocked takes a slot for c and serves p on a goroutine of its own.
func (h *Historian) startLocked(key string, c *client, p *pending) {
	c.inFlight++
	h.total++
	h.wg.Go(func() {
		h.serveFn(h.ctx, p.reply, p.req)
		h.release(key)
	})
}

// release gives key's slot back and hands the free slots to the clients
// waiting, in turn.
func (h *Historian) release(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.total--
	if c := h.clients[key]; c != nil {
		c.inFlight--
		if c.inFlight == 0 && c.waiting == nil {
			delete(h.clients, key)
		}
	}
	for turns := len(h.ring); turns > 0 && h.total < h.cfg.InFlight; turns-- {
		next := h.ring[0]
		h.ring = h.ring[1:]
		c := h.clients[next]
		if c == nil || c.waiting == nil {
			continue
		}
		if c.inFlight >= h.cfg.PerClient {
			h.ring = append(h.ring, next) // its turn comes again when its own ends
			continue
		}
		p := c.waiting
		c.waiting = nil
		h.startLocked(next, c, p)
	}
}

// oneHive is one hive's literal subject, hive.telemetry.<hive id>.
func oneHive(subj string) bool {
	id, ok := strings.CutPrefix(subj, wire.SubjectTelemetry+".")
	want, err := wire.TelemetrySubjectFor(id)
	return ok && err == nil && want == subj
}

// maxClients bounds the addresses the historian keeps state for (each
// with at most one waiting request).
const maxClients = 4096

// clientKey is the requester's address, from the client information the
// server adds to a shared service import (the client cannot set it): an
// IPv4 address, or an IPv6 /64 (one host's usual allocation). Without
// one, every request shares one key.
func clientKey(m *nats.Msg) string {
	var ci struct {
		Host string `json:"host"`
	}
	raw := m.Header.Get("Nats-Request-Info")
	if raw == "" || json.Unmarshal([]byte(raw), &ci) != nil {
		return "unknown"
	}
	ip := net.ParseIP(ci.Host)
	switch {
	case ip == nil:
		return "unknown"
	case ip.To4() != nil:
		return ip.To4().String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// status is a reply with only a status line, as JetStream's own.
func status(err error) *nats.Msg {
	code, desc, _ := strings.Cut(err.Error(), " ")
	m := nats.NewMsg("")
	m.Header.Set("Status", code)
	m.Header.Set("Description", desc)
	return m
}

// serve asks JetStream for req and forwards every message of the answer
// to reply, up to its end-of-batch (or its one message, or 404).
func (h *Historian) serve(ctx context.Context, reply string, req request) {
	inbox := h.nc.NewRespInbox()
	sub, err := h.nc.SubscribeSync(inbox)
	if err != nil {
		_ = h.nc.PublishMsg(withSubject(status(errors.New("503 Service Unavailable")), reply))
		return
	}
	defer sub.Unsubscribe()
	body, _ := json.Marshal(req)
	if err := h.nc.PublishRequest("$JS.API.DIRECT.GET."+h.cfg.Stream, inbox, body); err != nil {
		_ = h.nc.PublishMsg(withSubject(status(errors.New("503 Service Unavailable")), reply))
		return
	}
	h.served.Add(1)
	for {
		mctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
		m, err := sub.NextMsgWithContext(mctx)
		cancel()
		if err != nil {
			_ = h.nc.PublishMsg(withSubject(status(errors.New("408 Request Timeout")), reply))
			return
		}
		out := &nats.Msg{Subject: reply, Header: m.Header, Data: m.Data}
		if err := h.nc.PublishMsg(out); err != nil {
			return
		}
		// A batch ends with a status (204 end of batch, 404, 408); a
		// single get is one message.
		if m.Header.Get("Status") != "" || req.Batch == 0 {
			return
		}
	}
}

func withSubject(m *nats.Msg, subj string) *nats.Msg {
	m.Subject = subj
	return m
}
