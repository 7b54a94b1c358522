package hubcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive/internal/wait"
)

// CreateStream makes the history stream from streamJSON
// (deployments/hub-stream.json) as the admin user; it is idempotent.
func (c *Cluster) CreateStream(ctx context.Context, streamJSON string) (jetstream.Stream, *nats.Conn, error) {
	raw, err := os.ReadFile(streamJSON)
	if err != nil {
		return nil, nil, err
	}
	var cfg jetstream.StreamConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", streamJSON, err)
	}
	cfg.Replicas = min(cfg.Replicas, len(c.Nodes)) // R1 on a single node
	nc, err := nats.Connect(c.ClientURLs(), c.TLS(), nats.UserInfo("admin", c.pw.Admin), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	var s jetstream.Stream
	err = Retry(ctx, func(ctx context.Context) (err error) {
		s, err = js.CreateOrUpdateStream(ctx, cfg)
		return err
	})
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("create stream %s: %w", cfg.Name, err)
	}
	if err := createReaders(ctx, s, filepath.Join(filepath.Dir(streamJSON), "hub-reader.json")); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return s, nc, nil
}

// attemptTimeout bounds one JetStream API request. A request sent while
// the cluster has no meta leader (an election, which a busy machine can
// start at any time by starving a node's heartbeats) is answered by
// nobody, so waiting on it for the caller's whole deadline loses the
// deadline; asking again reaches the next leader.
const attemptTimeout = 10 * time.Second

// Retry calls f, each call bounded by attemptTimeout, until it succeeds,
// fails for a reason other than an unanswered or unavailable cluster, or
// ctx ends; it returns f's last error.
func Retry(ctx context.Context, f func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		err := f(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !unanswered(err) {
			return err
		}
		if !wait.Sleep(ctx, 250*time.Millisecond) {
			return err
		}
	}
}

// ReaderConsumers are the named reader's pull consumers, made by the admin
// as compose's hub-reader one-shots do: the reader may read and ack them,
// never make, change or delete one (deployments/hub.conf).
var ReaderConsumers = []string{"reader-1", "reader-2", "reader-3", "reader-4"}

// createReaders makes every reader consumer from readerJSON
// (deployments/hub-reader.json), each under its own name.
func createReaders(ctx context.Context, s jetstream.Stream, readerJSON string) error {
	raw, err := os.ReadFile(readerJSON)
	if err != nil {
		return err
	}
	for _, name := range ReaderConsumers {
		var cfg jetstream.ConsumerConfig
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return fmt.Errorf("%s: %w", readerJSON, err)
		}
		cfg.Durable = name
		err := Retry(ctx, func(ctx context.Context) error {
			_, err := s.CreateOrUpdateConsumer(ctx, cfg)
			return err
		})
		if err != nil {
			return fmt.Errorf("create consumer %s: %w", name, err)
		}
	}
	return nil
}

// dropBlock removes the block that starts at start ("\nname {") up to
// its closing brace at the start of a line.
func dropBlock(conf, start string) (string, error) {
	i := strings.Index(conf, start)
	if i < 0 {
		return "", fmt.Errorf("no %q block", strings.TrimSpace(start))
	}
	j := strings.Index(conf[i+1:], "\n}")
	if j < 0 {
		return "", fmt.Errorf("unterminated %q block", strings.TrimSpace(start))
	}
	return conf[:i] + conf[i+1+j+2:], nil
}

// unanswered reports whether err says the cluster did not answer or could
// not yet (no responders, a timeout, JetStream unavailable: 503).
func unanswered(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 503
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}
