package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// directGet is a JetStream direct get request (nats-server's
// JSApiMsgGetRequest): one message, or a batch from a sequence or a time.
type directGet struct {
	Seq       uint64     `json:"seq,omitempty"`
	LastFor   string     `json:"last_by_subj,omitempty"`
	NextFor   string     `json:"next_by_subj,omitempty"`
	Batch     int        `json:"batch,omitempty"`
	MaxBytes  int        `json:"max_bytes,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
}

// directReader sends direct gets to api: the hub's historians, which ask
// the stream (any replica with allow_direct answers).
type directReader struct {
	nc  *nats.Conn
	api string
	// stream and subject are what every answer must carry: another
	// client who learnt this one's inbox can send it messages too.
	stream, subject string
}

// replyTimeout bounds the wait for each message of an answer.
const replyTimeout = 5 * time.Second

// lastSeq is the sequence of subj's last message, 0 when the stream holds
// none.
func (r directReader) lastSeq(ctx context.Context, subj string) (uint64, error) {
	body, _ := json.Marshal(directGet{LastFor: subj})
	var m *nats.Msg
	for {
		rctx, cancel := context.WithTimeout(ctx, replyTimeout)
		var err error
		m, err = r.nc.RequestWithContext(rctx, r.api, body)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("direct get: %w", err)
		}
		if m.Header.Get("Status") != "429" {
			break
		}
		if err := busyPause(ctx); err != nil {
			return 0, err
		}
	}
	switch m.Header.Get("Status") {
	case "":
	case "404":
		return 0, nil
	default:
		return 0, fmt.Errorf("direct get: %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
	}
	return strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
}

// batch sends req and hands each message to fn until the end of the batch
// or until fn returns false. It returns the last sequence handed over (0
// for none) and how many messages the stream holds after the batch.
func (r directReader) batch(ctx context.Context, req directGet, fn func(seq uint64, data []byte) bool) (last, pending uint64, err error) {
	for {
		last, pending, err = r.batchOnce(ctx, req, fn)
		if !errors.Is(err, errBusy) {
			return last, pending, err
		}
		if err := busyPause(ctx); err != nil {
			return 0, 0, err
		}
	}
}

// errBusy is a historian's 429: this client has as many requests in
// flight as it may, or the historians are full. Asked again after a pause.
var errBusy = errors.New("direct get: 429 the historians are busy")

// busyPause waits before a request a historian turned away is sent
// again.
func busyPause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(50 * time.Millisecond):
		return nil
	}
}

func (r directReader) batchOnce(ctx context.Context, req directGet, fn func(seq uint64, data []byte) bool) (last, pending uint64, err error) {
	inbox := r.nc.NewRespInbox()
	sub, err := r.nc.SubscribeSync(inbox)
	if err != nil {
		return 0, 0, fmt.Errorf("direct get: %w", err)
	}
	defer sub.Unsubscribe()
	body, _ := json.Marshal(req)
	if err := r.nc.PublishRequest(r.api, inbox, body); err != nil {
		return 0, 0, fmt.Errorf("direct get: %w", err)
	}
	for {
		ctx, cancel := context.WithTimeout(ctx, replyTimeout)
		m, err := sub.NextMsgWithContext(ctx)
		cancel()
		if err != nil {
			return last, 0, fmt.Errorf("direct get: %w", err)
		}
		switch m.Header.Get("Status") {
		case "":
		case "204": // end of batch
			pending, _ = strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return last, pending, nil
		case "404":
			return last, 0, nil
		case "429":
			return last, 0, errBusy
		default:
			return last, 0, fmt.Errorf("direct get: %s %s", m.Header.Get("Status"), m.Header.Get("Description"))
		}
		seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
		if err != nil {
			return last, 0, errors.New("direct get: a message without Nats-Sequence")
		}
		if !r.answers(m, seq, last) {
			continue // not this request's answer: skipped, never handed over
		}
		if !fn(seq, m.Data) {
			return last, 0, nil
		}
		last = seq
	}
}

// answers reports whether m is a message the stream sent for this read:
// of the stream and subject asked for, after the last one handed over.
func (r directReader) answers(m *nats.Msg, seq, last uint64) bool {
	return m.Header.Get("Nats-Stream") == r.stream && m.Header.Get("Nats-Subject") == r.subject && seq > last
}
