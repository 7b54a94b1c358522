package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rbee/hive/bus/wire"
)

// Conn is a module's connection to the bus. It is a *nats.Conn (Publish,
// Flush, Close...) plus the typed helpers below, which are how modules
// exchange messages: they decode, answer and count in one place, so no
// module handles a *nats.Msg.
type Conn struct {
	*nats.Conn
	name string
	bad  *atomic.Uint64
	log  *slog.Logger
	edge *edge // nil when nothing leaves the hive
}

// Publish publishes data on subject. A subject the hive exports is also
// handed to the bridge for the edge server (observers and the hub).
func (c *Conn) Publish(subject string, data []byte) error {
	if err := c.Conn.Publish(subject, data); err != nil {
		return err
	}
	c.edge.offer(subject, nil, data)
	return nil
}

// PublishMsg publishes m, and hands an exported subject to the bridge as
// Publish does.
func (c *Conn) PublishMsg(m *nats.Msg) error {
	if err := c.Conn.PublishMsg(m); err != nil {
		return err
	}
	c.edge.offer(m.Subject, m.Header, m.Data)
	return nil
}

// Sub is a subscription made through a Conn.
type Sub = nats.Subscription

// ReplyError is a request's failure as the responder meant it: a code
// for the caller to act on (the gateway maps it to an HTTP status), a
// message for people, and how long to wait before retrying.
type ReplyError struct {
	Code       string
	Msg        string
	RetryAfter int // seconds; 0 = no hint
}

func (e *ReplyError) Error() string { return e.Msg }

// Errorf returns a *ReplyError with code.
func Errorf(code, format string, args ...any) error {
	return &ReplyError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// undecodable counts and logs a message no handler could read.
func (c *Conn) undecodable(subject string, err error) {
	n := c.bad.Add(1)
	c.log.Warn("undecodable bus message dropped", "conn", c.name, "subject", subject, "err", err, "undecodable_total", n)
}

// Subscribe calls fn with every message on subject decoded from JSON as T.
// A message that does not decode is counted (Bus.Undecodable) and dropped.
// fn runs on the subscription's goroutine, one message at a time.
func Subscribe[T any](c *Conn, subject string, fn func(T)) (*Sub, error) {
	return c.Subscribe(subject, func(m *nats.Msg) {
		var v T
		if err := json.Unmarshal(m.Data, &v); err != nil {
			c.undecodable(m.Subject, err)
			return
		}
		fn(v)
	})
}

// SubscribeChan delivers every message on subject, decoded as T, to a
// channel of size buf. When the reader falls behind, messages are dropped
// and counted in dropped; the channel is never closed.
func SubscribeChan[T any](c *Conn, subject string, buf int, dropped *atomic.Uint64) (<-chan T, *Sub, error) {
	ch := make(chan T, buf)
	sub, err := Subscribe(c, subject, func(v T) {
		select {
		case ch <- v:
		default:
			if dropped != nil {
				dropped.Add(1)
			}
		}
	})
	return ch, sub, err
}

// Handle answers requests on subject: each body is decoded from JSON as
// Req (an empty body is Req's zero value) and answered with h's result as
// JSON, or with an ErrorReply whose code comes from a *ReplyError in h's
// error chain (CodeInternal otherwise). An undecodable request is counted
// and answered CodeInvalid.
func Handle[Req, Resp any](c *Conn, subject string, h func(Req) (Resp, error)) (*Sub, error) {
	return c.Subscribe(subject, func(m *nats.Msg) {
		var req Req
		if len(m.Data) > 0 {
			if err := json.Unmarshal(m.Data, &req); err != nil {
				c.undecodable(m.Subject, err)
				c.respond(m, wire.ErrorReply{Error: "undecodable request: " + err.Error(), Code: wire.CodeInvalid})
				return
			}
		}
		resp, err := h(req)
		if err != nil {
			e := wire.ErrorReply{Error: err.Error(), Code: wire.CodeInternal}
			var re *ReplyError
			if errors.As(err, &re) {
				e.Code, e.RetryAfter = re.Code, re.RetryAfter
			}
			c.respond(m, e)
			return
		}
		c.respond(m, resp)
	})
}

func (c *Conn) respond(m *nats.Msg, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.log.Error("encode reply", "conn", c.name, "subject", m.Subject, "err", err)
		return
	}
	if err := m.Respond(b); err != nil {
		c.log.Warn("reply", "conn", c.name, "subject", m.Subject, "err", err)
	}
}

// Request sends req as JSON on subject and decodes the reply as Resp. An
// ErrorReply comes back as a *ReplyError; no responder, a timeout or a
// reply that does not decode as another error.
func Request[Req, Resp any](ctx context.Context, c *Conn, subject string, req Req) (Resp, error) {
	var zero Resp
	body, err := json.Marshal(req)
	if err != nil {
		return zero, fmt.Errorf("encode %s request: %w", subject, err)
	}
	m, err := c.RequestWithContext(ctx, subject, body)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", subject, err)
	}
	var e wire.ErrorReply
	if json.Unmarshal(m.Data, &e) == nil && e.Error != "" {
		return zero, &ReplyError{Code: e.Code, Msg: e.Error, RetryAfter: e.RetryAfter}
	}
	var resp Resp
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		c.undecodable(subject+" (reply)", err)
		return zero, fmt.Errorf("%s: undecodable reply: %w", subject, err)
	}
	return resp, nil
}

// PublishJSON publishes v as JSON on subject.
func (c *Conn) PublishJSON(subject string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", subject, err)
	}
	return c.Publish(subject, b)
}

// PublishTelemetry publishes one encoded TelemetryEvent of hiveID, with
// the Hive-Id header every consumer filters on.
func (c *Conn) PublishTelemetry(hiveID string, data []byte) error {
	msg := &nats.Msg{Subject: wire.SubjectTelemetry, Data: data, Header: nats.Header{}}
	msg.Header.Set(wire.HeaderHiveID, hiveID)
	return c.PublishMsg(msg)
}

// SubscribeTelemetry calls fn with the encoded bytes of every telemetry
// event of hiveID. Another hive's events (arriving over a leafnode, or a
// shared bus) are skipped; so are events without the header when hiveID is
// set, unless they name no hive at all.
func SubscribeTelemetry(c *Conn, hiveID string, fn func(data []byte)) (*Sub, error) {
	return c.Subscribe(wire.SubjectTelemetry, func(m *nats.Msg) {
		if id := m.Header.Get(wire.HeaderHiveID); hiveID != "" && id != "" && id != hiveID {
			return
		}
		fn(m.Data)
	})
}

// Drain unsubscribes sub and waits, at most limit, until its handler has
// returned for every message the server sent before the unsubscribe. It
// reports whether that happened within limit.
func Drain(sub *Sub, limit time.Duration) bool {
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	if sub.Drain() != nil {
		return false
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-closed:
		return true
	case <-t.C:
		return false
	}
}
