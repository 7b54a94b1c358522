package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rbee/hive/bus/wire"
)

// HistoryStream is the hub's stream of every hive's telemetry
// (deployments/hub-stream.json), on hive.telemetry.<hive id>.
const HistoryStream = "HIVE_TELEMETRY"

// History reads one hive's telemetry kept at a hub cluster: a read-only
// observer connection is enough. It follows the hub nodes listed in URL
// (comma-separated) like NATS does.
type History struct {
	// URL of the hub's client port(s), e.g. nats://hub-1:4222,nats://hub-2:4222.
	URL string
	// Stream is the history stream; "" is HistoryStream.
	Stream string
	// Options are passed to nats.Connect (credentials, TLS, names).
	Options []nats.Option
}

// Since delivers hiveID's events from since up to the stream's end when
// called, oldest first, to fn. Each Event's ID is its sequence in the
// stream. While the hub cluster elects a new stream leader it can fail:
// call it again.
func (h *History) Since(ctx context.Context, hiveID string, since time.Time, fn func(Event)) error {
	subj, err := wire.TelemetrySubjectFor(hiveID)
	if err != nil {
		return err
	}
	stream := h.Stream
	if stream == "" {
		stream = HistoryStream
	}
	opts := append([]nats.Option{nats.Name("hive history client")}, h.Options...)
	nc, err := nats.Connect(h.URL, opts...)
	if err != nil {
		return fmt.Errorf("client: connect %s: %w", h.URL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	// The end is the stream's last message when the read starts, so a
	// hive that keeps publishing cannot keep the read going.
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("client: history of %s: %w", hiveID, err)
	}
	last := st.CachedInfo().State.LastSeq
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subj},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
		// While the hub elects a stream leader, fail rather than retry
		// until ctx ends: the caller may try again.
		MaxResetAttempts: 5,
	})
	if err != nil {
		return fmt.Errorf("client: history of %s: %w", hiveID, err)
	}
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("client: history of %s: %w", hiveID, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("client: history of %s: %w", hiveID, err)
			}
			var ev wire.TelemetryEvent
			if json.Unmarshal(m.Data(), &ev) == nil {
				fn(Event{ID: md.Sequence.Stream, Telemetry: ev})
			}
			if md.NumPending == 0 || md.Sequence.Stream >= last {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("client: history of %s: %w", hiveID, err)
		}
		if n == 0 {
			return nil // nothing since then
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
