package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// module is what every hive module provides.
type module interface {
	Run(ctx context.Context) error
	Close() error
}

type named struct {
	name string
	mod  module
}

// runStages runs every module until ctx ends or one fails, then stops the
// stages in order: each stage's modules are stopped and awaited before the
// next stage's. It returns the first module failure, if any.
func runStages(ctx context.Context, log *slog.Logger, stopTimeout time.Duration, stages ...[]named) error {
	type result struct {
		name string
		err  error
	}
	results := make(chan result, 16)
	cancels := make([]context.CancelFunc, len(stages))
	waits := make([]*sync.WaitGroup, len(stages))
	for i, stage := range stages {
		sctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		waits[i] = new(sync.WaitGroup)
		for _, m := range stage {
			waits[i].Go(func() {
				err := m.mod.Run(sctx)
				if err != nil && sctx.Err() == nil {
					results <- result{m.name, err}
				}
			})
		}
	}
	var firstErr error
	select {
	case <-ctx.Done():
	case r := <-results:
		firstErr = fmt.Errorf("%s: %w", r.name, r.err)
		log.Error("module failed, shutting down", "module", r.name, "err", r.err)
	}
	deadline := time.After(stopTimeout)
	for i, stage := range stages {
		cancels[i]()
		for _, m := range stage {
			_ = m.mod.Close()
		}
		done := make(chan struct{})
		go func() { waits[i].Wait(); close(done) }()
		select {
		case <-done:
		case <-deadline:
			return errors.Join(firstErr, errors.New("shutdown timed out"))
		}
	}
	return firstErr
}
