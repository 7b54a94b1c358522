package bus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive/internal/wait"
)

// The forwarder sends the outbox's events to the hub's history one at a
// time, in the order they were stored, each with its Nats-Msg-Id, and
// lets one go only once the hub's stream acknowledged it: a resend after
// a lost answer or a restart is de-duplicated by the hub (within its
// duplicate window), and no event overtakes another. One request in
// flight is plenty: the rate bound (StoreConfig.Rate) is far below what
// one round trip a message allows.
const (
	// hubAckWait bounds one publish's wait for the hub's answer.
	hubAckWait = 5 * time.Second
	// retryMin and retryMax bound the wait between tries while the hub
	// is away or its stream has no leader yet.
	retryMin, retryMax = 250 * time.Millisecond, 5 * time.Second
	// idleCheck is how often an idle forwarder looks for events the
	// store acknowledged while it was not listening (a missed wake).
	idleCheck = time.Second
)

// dialHub connects to the hub's ingest users (comma-separated client
// URLs), retrying forever in the background: the hive starts whether
// the hub is there or not.
func (o *outbox) dialHub(urls string, tlsCfg *tls.Config, name string) error {
	opts := []nats.Option{
		nats.Name(name + " outbox"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		// Spread 10,000 hives coming back at once.
		nats.ReconnectJitter(time.Second, 2*time.Second),
		nats.NoCallbacksAfterClientClose(),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				o.log.Warn("hub outbox: lost the hub; storing until it is back", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			o.log.Info("hub outbox: hub reached; forwarding", "url", c.ConnectedUrlRedacted(), "backlog", o.backlog())
			o.poke()
		}),
	}
	if tlsCfg != nil {
		opts = append(opts, nats.Secure(tlsCfg.Clone()))
	}
	nc, err := nats.Connect(strings.TrimSpace(urls), opts...)
	if err != nil {
		return fmt.Errorf("bus: hub ingest %s: %w", redactList(urls), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return err
	}
	o.hub, o.hubJS = nc, js
	return nil
}

func (o *outbox) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// forwardLoop forwards until close, from the oldest stored event on.
func (o *outbox) forwardLoop() {
	defer o.done.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-o.quit
		cancel()
	}()
	var last time.Time
	for ctx.Err() == nil {
		m, err := o.nextStored(ctx)
		if err != nil {
			o.idle(ctx, errors.Is(err, jetstream.ErrMsgNotFound))
			continue
		}
		o.pace(ctx, &last)
		if !o.send(ctx, m) {
			return
		}
		o.release(ctx, m.Sequence)
	}
}

// nextStored reads the first stored event at or after next, counting
// the ones the store's bounds dropped on the way. It asks the store only
// when the store has acknowledged an event at or after next: an idle
// forwarder costs nothing between events.
func (o *outbox) nextStored(ctx context.Context) (*jetstream.RawStreamMsg, error) {
	next := o.next.Load()
	if next > o.stored.Load() {
		return nil, jetstream.ErrMsgNotFound
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := o.stream.GetMsg(rctx, next, jetstream.WithGetMsgSubject(outboxSubject))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Nothing waits; what the bounds dropped since is counted now,
		// not when the next event comes.
		if info, ierr := o.stream.Info(rctx); ierr == nil && info.State.FirstSeq > next {
			o.countGap(info.State.FirstSeq-next, info.State.Bytes)
			o.next.Store(info.State.FirstSeq)
		}
	}
	if err != nil {
		return nil, err
	}
	if m.Sequence > next {
		var held uint64
		if info, ierr := o.stream.Info(rctx); ierr == nil {
			held = info.State.Bytes
		}
		o.countGap(m.Sequence-next, held)
		o.next.Store(m.Sequence)
	}
	return m, nil
}

// countGap counts n events the store dropped before they were
// forwarded: pushed out by the byte bound when the store holds near it
// (held bytes), else aged out.
func (o *outbox) countGap(n, held uint64) {
	reason := dropAge
	if held >= uint64(o.cfg.MaxBytes)*9/10 {
		reason = dropBytes
	}
	o.dropped[reason].Add(n)
	o.log.Warn("hub outbox: events dropped by the store's bound before the hub took them", "events", n, "reason", reason,
		"max_age", o.cfg.MaxAge.String(), "max_bytes", o.cfg.MaxBytes)
}

// idle waits for the store's next event, or a moment after an error.
func (o *outbox) idle(ctx context.Context, empty bool) {
	d := idleCheck
	if !empty {
		d = retryMax
	}
	o.await(ctx, d)
}

// pace keeps forwarding within Rate events a second.
func (o *outbox) pace(ctx context.Context, last *time.Time) {
	if o.cfg.Rate > 0 {
		wait.Sleep(ctx, time.Until(last.Add(time.Second/time.Duration(o.cfg.Rate))))
	}
	*last = time.Now()
}

// send publishes m to the hub until the hub's stream acknowledges it (a
// duplicate is an acknowledgement too) or refuses it for good. It
// returns false only when the forwarder stops.
func (o *outbox) send(ctx context.Context, m *jetstream.RawStreamMsg) bool {
	pause := retryMin
	for {
		if o.hub.IsConnected() {
			pctx, cancel := context.WithTimeout(ctx, hubAckWait)
			_, err := o.hubJS.PublishMsg(pctx, hubMsg(o.subject, m), jetstream.WithRetryAttempts(0))
			cancel()
			if err == nil {
				o.forwarded.Add(1)
				return true
			}
			if refusedForGood(err) {
				o.dropped[dropHubRefused].Add(1)
				o.log.Warn("hub outbox: the hub's stream refused an event; it is dropped", "id", m.Header.Get(jetstream.MsgIDHeader), "err", err)
				return true
			}
		}
		if !o.await(ctx, pause) {
			return false
		}
		pause = min(2*pause, retryMax)
	}
}

// await waits d, or less when poked (the store acknowledged an event,
// or the hub was reached again); false when the forwarder stops.
func (o *outbox) await(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-o.wake:
		return true
	case <-t.C:
		return true
	}
}

// hubMsg is the stored event as the hub takes it: its data and its id,
// none of the store's own headers (a direct get adds Nats-Stream,
// Nats-Sequence...), which a history reader would take for the hub's.
func hubMsg(subject string, m *jetstream.RawStreamMsg) *nats.Msg {
	out := &nats.Msg{Subject: subject, Header: nats.Header{}, Data: m.Data}
	out.Header.Set(jetstream.MsgIDHeader, m.Header.Get(jetstream.MsgIDHeader))
	return out
}

// refusedForGood tells a stream's refusal of the message itself (too
// big, a wrong stream) from a hub that is away or electing a leader.
func refusedForGood(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.Code >= 400 && apiErr.Code < 500
}

// release drops the forwarded event from the store.
func (o *outbox) release(ctx context.Context, seq uint64) {
	o.next.Store(seq + 1)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// A delete is a small append to the store; a purge to a sequence
	// would rewrite the store's block each time.
	if err := o.stream.DeleteMsg(pctx, seq); err != nil && ctx.Err() == nil {
		o.log.Debug("hub outbox: release failed; the event may be sent again after a restart", "seq", seq, "err", err)
	}
}
