package bus

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rbee/hive/bus/wire"
)

// Account names on the edge server. Observers and the bridge live in
// edgeAccount; the leafnode to the hub is bound to hubAccount, which sees
// only the exports.
const (
	edgeAccount = "EDGE"
	hubAccount  = "HUB"
)

// bridgeQueue bounds the exported messages waiting for the edge; past it
// the oldest is dropped (and counted), so a stalled edge always gets the
// newest tick once it reads again.
const bridgeQueue = 64

// edge is the server external clients reach: TCP observers and the hub
// leafnode. The bridge copies the exported subjects into it: a Conn hands
// each message it publishes on one to the bridge's queue (offer), and the
// bridge's goroutine publishes it on its in-process connection to the
// edge. Whatever an edge client does (never read, subscribe a thousand
// times), a module's publish only ever appends to that bounded queue, and
// the modules' server never writes to a socket.
//
// The bridge was a subscription on the modules' server; handing it the
// message at publish time saves the server's write, the pipe and the
// subscriber's read loop and handler, four goroutine wake-ups of about
// twenty an idle hive has each second.
type edge struct {
	ns      *server.Server
	out     *nats.Conn // the bridge's connection to the edge
	exports []string   // the subjects offer takes (literal)
	perHive string     // telemetry's copy for the hub; "" for none
	queue   chan *nats.Msg
	quit    chan struct{}
	ended   chan struct{}
	log     *slog.Logger

	// publishErrors counts copies the edge refused (over its payload
	// limit, a closed connection); hubTrimmed events whose hub copy was
	// cut to wire.MaxHubEventBytes; drops messages the queue had no room
	// for. errLogged makes the first refusal of a run a warning and the
	// rest counts only.
	publishErrors, hubTrimmed, drops atomic.Uint64
	// hasHub: a leafnode to a hub is configured (hive_hub_configured).
	hasHub bool
	// outbox keeps telemetry for the hub's history until the hub has it;
	// nil without a store or ingest URLs.
	outbox    *outbox
	errLogged atomic.Bool
}

func startEdge(cfg Config, b *Bus, log *slog.Logger) (*edge, error) {
	bkp, bpub, err := newUserKey()
	if err != nil {
		return nil, fmt.Errorf("bus: bridge key: %w", err)
	}
	lim := cfg.Observers
	acc := server.NewAccount(edgeAccount)
	// The bridge publishes each telemetry message a second time under this
	// hive's own subject for the hub (an account imports a subject once,
	// so an import cannot rename a copy). It crosses the leafnode only
	// while the hub wants it, e.g. for its history stream.
	perHive, exports := "", cfg.HubExports
	if (cfg.Hub != "" || cfg.HubIngest != "") && cfg.HubHiveID != "" {
		if perHive, err = wire.TelemetrySubjectFor(cfg.HubHiveID); err != nil {
			return nil, err
		}
		exports = append(exports[:len(exports):len(exports)], perHive)
	}
	opts, err := edgeOptions(cfg, acc, bpub, exports)
	if err != nil {
		return nil, err
	}
	var ob *outboxSetup
	if cfg.HubIngest != "" && cfg.Store.Dir != "" && perHive != "" {
		if ob, err = prepareOutbox(opts, cfg.Store); err != nil {
			return nil, err
		}
	}
	ns, err := startServer(opts, cfg.ReadyTimeout, log)
	if err != nil {
		ob.unlock()
		return nil, err
	}
	e := &edge{ns: ns, log: log, hasHub: cfg.Hub != "", exports: cfg.HubExports, perHive: perHive,
		queue: make(chan *nats.Msg, bridgeQueue), quit: make(chan struct{}), ended: make(chan struct{})}
	if e.out, err = b.connect(ns, bpub, bkp, "bridge"); err != nil {
		close(e.ended)
		e.close()
		ob.unlock()
		return nil, err
	}
	if ob != nil {
		if e.outbox, err = openOutbox(e, b, ob, cfg); err != nil {
			close(e.ended)
			e.close()
			ob.unlock()
			return nil, err
		}
	}
	go e.run()
	if cfg.Listen != "" {
		log.Info("nats listening", "url", ns.ClientURL(), "max_conns", lim.MaxConns, "max_subs", lim.MaxSubs,
			"max_pending", lim.MaxPending, "write_deadline", lim.WriteDeadline.String(), "auth", cfg.ObserverUser != "")
	}
	return e, nil
}

// edgeOptions are the edge server's: the EDGE account with the bridge's
// key (in-process, publish the exports only), the read-only observer
// (anonymous, or the configured user), the listener and the hub remote.
func edgeOptions(cfg Config, acc *server.Account, bridgePub string, exports []string) (*server.Options, error) {
	lim := cfg.Observers
	readOnly := &server.Permissions{
		Publish:   &server.SubjectPermission{Deny: []string{">"}},
		Subscribe: &server.SubjectPermission{Allow: subscribable(cfg.HubExports)},
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		NoSigs:     true,
		DontListen: cfg.Listen == "",
		// Observers may not read $SYS, and the hub's leafnode is bound
		// to HUB: no system account (see the modules' server).
		NoSystemAccount: true,
		// Loopback unless told otherwise: the default 0.0.0.0 would expose the bus.
		Host:     "127.0.0.1",
		Port:     -1,
		Accounts: []*server.Account{acc},
		Nkeys: []*server.NkeyUser{{
			Nkey: bridgePub, Account: acc,
			AllowedConnectionTypes: map[string]struct{}{"IN_PROCESS": {}},
			Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: exports},
				Subscribe: &server.SubjectPermission{Deny: []string{">"}},
			},
		}},
		MaxConn:             lim.MaxConns + 1, // the bridge is a connection too
		MaxSubs:             lim.MaxSubs,
		MaxPending:          lim.MaxPending,
		WriteDeadline:       lim.WriteDeadline,
		LameDuckDuration:    2 * time.Second,
		LameDuckGracePeriod: 500 * time.Millisecond,
	}
	if err := addObserver(opts, cfg, acc, readOnly); err != nil {
		return nil, err
	}
	if err := setEdgeListen(opts, cfg.Listen); err != nil {
		return nil, err
	}
	if cfg.TLS != nil {
		opts.TLSConfig, opts.TLS, opts.TLSTimeout = cfg.TLS, true, 2
		opts.TLSVerify = cfg.TLS.ClientAuth == tls.RequireAndVerifyClientCert
	}
	if cfg.Hub != "" {
		if err := addHub(opts, acc, cfg.Hub, cfg.HubReconnect, exports); err != nil {
			return nil, err
		}
		if cfg.HubTLS != nil {
			r := opts.LeafNode.Remotes[0]
			r.TLS, r.TLSConfig, r.TLSTimeout = true, cfg.HubTLS, 2
		}
	}
	return opts, nil
}

// addObserver lets the read-only observer in: the configured user, or
// whoever connects without credentials.
func addObserver(opts *server.Options, cfg Config, acc *server.Account, readOnly *server.Permissions) error {
	if cfg.ObserverUser != "" && cfg.ObserverPassword != "" {
		opts.Users = []*server.User{{Username: cfg.ObserverUser, Password: cfg.ObserverPassword, Account: acc, Permissions: readOnly}}
	} else {
		// Whoever connects without credentials is the observer. Its key
		// pair is thrown away: it is never used to sign.
		_, opub, err := newUserKey()
		if err != nil {
			return fmt.Errorf("bus: observer key: %w", err)
		}
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: opub, Account: acc, Permissions: readOnly})
		opts.NoAuthUser = opub
	}
	return nil
}

// setEdgeListen sets the observers' listener from HOST:PORT ("" keeps
// the loopback default, unused then).
func setEdgeListen(opts *server.Options, listen string) error {
	if listen == "" {
		return nil
	}
	host, port, err := splitHostPort(listen)
	if err != nil {
		return fmt.Errorf("bus: listen address %q: %w", listen, err)
	}
	// nats-server reports a busy port only after its full ready
	// timeout; binding first fails at once with the real error.
	if port > 0 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("bus: listen %s: the port is in use (another hive?): move NATS with --nats-listen (\"\" for none)", listen)
		}
		if err != nil {
			return fmt.Errorf("bus: listen %s: %w", listen, err)
		}
		_ = ln.Close()
	}
	opts.Host, opts.Port = host, port
	return nil
}

// offer queues a copy of a message just published on the modules' server
// for the edge when its subject is exported. It never blocks: with the
// queue full the oldest waiting message makes room. The copy owns its
// bytes, so the caller may reuse data.
func (e *edge) offer(subject string, header nats.Header, data []byte) {
	if e == nil || !slices.Contains(e.exports, subject) {
		return
	}
	m := &nats.Msg{Subject: subject, Header: header, Data: bytes.Clone(data)}
	for {
		select {
		case e.queue <- m:
			return
		default:
		}
		select {
		case <-e.queue:
			e.drops.Add(1)
		default:
		}
	}
}

// run publishes what offer queued until close.
func (e *edge) run() {
	defer close(e.ended)
	for {
		select {
		case m := <-e.queue:
			e.forward(m)
		case <-e.quit:
			for {
				select {
				case m := <-e.queue:
					e.forward(m)
				default:
					return
				}
			}
		}
	}
}

// forward sends m to the edge, and telemetry a second time under the
// hive's own subject for the hub.
func (e *edge) forward(m *nats.Msg) {
	e.publish(m)
	if e.perHive != "" && m.Subject == wire.SubjectTelemetry {
		if data, ok := e.hubCopy(m.Data); ok {
			e.publish(&nats.Msg{Subject: e.perHive, Header: m.Header, Data: data})
			if e.outbox != nil {
				e.outbox.store(eventID(e.perHive, data), data)
			}
		}
	}
}

// publish sends m to the edge, counting what it refuses.
func (e *edge) publish(m *nats.Msg) {
	err := e.out.PublishMsg(m)
	if err == nil {
		return
	}
	e.publishErrors.Add(1)
	if !e.errLogged.Swap(true) {
		e.log.Warn("bridge: the edge refused a message; later refusals are only counted (hive_nats_bridge_publish_errors_total)",
			"subject", m.Subject, "bytes", len(m.Data), "err", err)
	}
}

// hubCopy is the event as the hub's history keeps it: within
// wire.MaxHubEventBytes, the stream's max_msg_size, so that no hive holds
// more than its share of the history whatever its processes are called.
// ok is false for a body that is not an event (never published so).
func (e *edge) hubCopy(data []byte) ([]byte, bool) {
	if len(data) <= hubBodyBytes {
		return data, true
	}
	var ev wire.TelemetryEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		e.publishErrors.Add(1)
		return nil, false
	}
	b, _, err := wire.FitEvent(ev, hubBodyBytes)
	if err != nil {
		e.publishErrors.Add(1)
		return nil, false
	}
	e.hubTrimmed.Add(1)
	return b, true
}

// hubBodyBytes is the hub copy's bound: the stream's max_msg_size
// (wire.MaxHubEventBytes) counts the headers too (Hive-Id, Nats-Msg-Id),
// and a copy that filled it would be refused.
const hubBodyBytes = wire.MaxHubEventBytes - 512

// subscribable is what an observer may subscribe to: the exported
// subjects and anything below them.
func subscribable(exports []string) []string {
	out := make([]string, 0, 2*len(exports))
	for _, s := range exports {
		out = append(out, s, s+".>")
	}
	return out
}

func (e *edge) dropped() uint64 { return e.drops.Load() }

// close stops the bridge, after it has sent what was queued, then the
// outbox and the edge server. Offers after close are never sent.
func (e *edge) close() {
	close(e.quit)
	<-e.ended
	if e.out != nil {
		drainAndWait(e.out, time.Second)
	}
	if e.outbox != nil {
		e.outbox.close()
	}
	e.ns.Shutdown()
	e.ns.WaitForShutdown()
	if e.outbox != nil {
		e.outbox.setup.unlock()
	}
}
