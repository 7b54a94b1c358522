package client

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rbee/hive/bus/wire"
)

// HistoryStream is the hub's stream of every hive's telemetry
// (deployments/hub-stream.json), on hive.telemetry.<hive id>.
const HistoryStream = "HIVE_TELEMETRY"

// ObserverInboxPrefix is where a history client gets its replies: the
// hub lets it subscribe there and not to _INBOX.>, where named clients'
// replies go (deployments/hub.conf).
const ObserverInboxPrefix = "_OBS"

// HistoryUser is the hub's public user for history reads; its password is
// empty. It lives in an account of its own, apart from the live
// telemetry, so that a reply subject it names cannot pose as a hive's
// event (deployments/hub.conf).
const HistoryUser = "history"

// History reads one hive's telemetry kept at a hub cluster. It asks the
// hub's historians (wire.SubjectHistoryGet) in JetStream's direct get
// format, batched by start time, which needs no consumer: the public
// history user is enough (HistoryUser, unless Options name another), and
// the historians bound what any one client takes, so other clients
// cannot use up what it needs (a request they turn away, 429, is asked
// again after a pause). It follows the hub nodes listed in URL
// (comma-separated) like NATS does. Only messages the stream itself
// answered with, of the subject asked for and in order, are handed over.
type History struct {
	// URL of the hub's client port(s), e.g. nats://hub-1:4222,nats://hub-2:4222.
	URL string
	// Stream is the history stream; "" is HistoryStream.
	Stream string
	// Options are passed to nats.Connect after the defaults (credentials,
	// TLS, names; a named user's inbox prefix).
	Options []nats.Option
	// Batch is how many events one request asks for; 0 is 256.
	Batch int
}

// Since delivers hiveID's events stamped at or after since, up to the
// stream's end when called, oldest first, to fn. Each Event's ID is its
// sequence in the stream. A hive that could not reach the hub forwards
// what it kept when it can (in order, each once), so the stream may
// store an event well after its own timestamp: events are chosen by
// their timestamp, not by when the hub stored them. It fails when no
// node answers in time: call it again.
func (h *History) Since(ctx context.Context, hiveID string, since time.Time, fn func(Event)) error {
	subj, err := wire.TelemetrySubjectFor(hiveID)
	if err != nil {
		return err
	}
	stream := cmp.Or(h.Stream, HistoryStream)
	opts := append([]nats.Option{nats.Name("hive history client"), nats.UserInfo(HistoryUser, ""),
		nats.CustomInboxPrefix(ObserverInboxPrefix)}, h.Options...)
	nc, err := nats.Connect(h.URL, opts...)
	if err != nil {
		return fmt.Errorf("client: connect %s: %w", h.URL, err)
	}
	defer nc.Close()
	r := directReader{nc: nc, api: wire.SubjectHistoryGet, stream: stream, subject: subj}
	// The end is the subject's last message when the read starts, so a
	// hive that keeps publishing cannot keep it going.
	end, err := r.lastSeq(ctx, subj)
	if err != nil || end == 0 {
		return err // end 0: nothing kept of this hive
	}
	req := directGet{NextFor: subj, Batch: cmp.Or(h.Batch, 256), StartTime: &since}
	for {
		seq, pending, err := r.batch(ctx, req, func(seq uint64, data []byte) bool {
			if seq > end {
				return false
			}
			var ev wire.TelemetryEvent
			if json.Unmarshal(data, &ev) == nil && !stampedBefore(ev, since) {
				fn(Event{ID: seq, Telemetry: ev})
			}
			return true
		})
		switch {
		case err != nil:
			return fmt.Errorf("client: history of %s: %w", hiveID, err)
		case seq == 0 || seq >= end || pending == 0:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		}
		req = directGet{NextFor: subj, Batch: req.Batch, Seq: seq + 1}
	}
}

// stampedBefore reports an event whose own timestamp is before t (one
// without a readable timestamp is kept).
func stampedBefore(ev wire.TelemetryEvent, t time.Time) bool {
	at, err := time.Parse(time.RFC3339Nano, ev.Timestamp)
	return err == nil && at.Before(t)
}
