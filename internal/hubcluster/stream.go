package hubcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
	s, err := js.CreateOrUpdateStream(ctx, cfg)
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
		if _, err := s.CreateOrUpdateConsumer(ctx, cfg); err != nil {
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
