package main

import (
	"context"
	"log/slog"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
)

// shutdownReply answers hive.shutdown.
type shutdownReply struct {
	Status string `json:"status"`
}

// onShutdownRequest returns a context that also ends when someone asks on
// hive.shutdown (POST /v1/shutdown). The request is answered first, so the
// caller gets its 200 before the graceful shutdown begins.
func onShutdownRequest(ctx context.Context, b *bus.Bus, log *slog.Logger) (context.Context, error) {
	nc, err := b.Connect("shutdown")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	_, err = bus.Handle(nc, wire.SubjectHiveShutdown, func(struct{}) (shutdownReply, error) {
		log.Info("shutdown requested over the API")
		// The reply is sent when this returns; cancel after it is out.
		go func() { _ = nc.Flush(); cancel() }()
		return shutdownReply{Status: "shutting down"}, nil
	})
	if err != nil {
		cancel()
		return nil, err
	}
	if err := nc.Flush(); err != nil {
		cancel()
		return nil, err
	}
	// The bus drains this connection on Close; ctx's resources go with
	// its parent's.
	return ctx, nil
}
