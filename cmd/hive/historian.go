package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive/client"
	"github.com/rbee/hive/internal/historian"
)

// historianCmd is `hive historian`: the hub's public history service
// (internal/historian), one beside each hub node. It connects as the
// hub's historian user, its password in HIVE_HUB_HISTORIAN_PASSWORD
// (never an argument), and runs until SIGTERM.
func historianCmd(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) int {
	fs := flag.NewFlagSet("hive historian", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("nats", "", "the hub node(s) to serve, e.g. nats://hub-1:4222 (comma-separated)")
	caFile := fs.String("ca-file", "", "CA file that verifies the hub (PEM)")
	user := fs.String("user", "historian", "the hub user; its password comes from HIVE_HUB_HISTORIAN_PASSWORD")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	pw, ok := lookupEnv("HIVE_HUB_HISTORIAN_PASSWORD")
	if *url == "" || !ok || pw == "" {
		fmt.Fprintln(stderr, "hive historian: --nats and HIVE_HUB_HISTORIAN_PASSWORD are required")
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("component", "historian")
	opts := []nats.Option{nats.Name("hive historian"), nats.UserInfo(*user, pw), nats.CustomInboxPrefix("_HIST"),
		nats.MaxReconnects(-1), nats.ReconnectWait(500 * time.Millisecond), nats.RetryOnFailedConnect(true)}
	if *caFile != "" {
		tc, err := client.TLSConfig(*caFile, "", "")
		if err != nil {
			fmt.Fprintln(stderr, "hive historian:", err)
			return 2
		}
		opts = append(opts, nats.Secure(tc))
	}
	nc, err := nats.Connect(*url, opts...)
	if err != nil {
		fmt.Fprintln(stderr, "hive historian: connect:", err)
		return 1
	}
	defer nc.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h := historian.New(historian.Config{}, nc, log)
	log.Info("serving the hub's history", "hub", *url)
	if err := h.Run(ctx); err != nil {
		log.Error("historian stopped", "err", err)
		return 1
	}
	served, refused := h.Stats()
	log.Info("historian stopped", "served", served, "refused", refused)
	return 0
}
