package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// module is what every hive module provides: Run until ctx ends.
type module interface {
	Run(ctx context.Context) error
}

// readier is a module that can say when it is serving: subscribed to its
// subjects, listening on its port.
type readier interface {
	Ready() <-chan struct{}
}

type named struct {
	name string
	mod  module
}

// runStages runs every module until ctx ends or one fails, then stops the
// stages in order: each stage's modules are stopped and awaited before the
// next stage's. Stages start in the reverse order, each waiting until the
// later stage's modules are ready, so a consumer is subscribed before its
// producer publishes (the first tick reaches the SSE history) and is still
// there when the producer publishes its last event. It returns the first
// module failure, if any.
func runStages(ctx context.Context, log *slog.Logger, stopTimeout time.Duration, stages ...[]named) error {
	type result struct {
		name string
		err  error
	}
	results := make(chan result, 16)
	cancels := make([]context.CancelFunc, len(stages))
	waits := make([]*sync.WaitGroup, len(stages))
	var firstErr error
	fail := func(r result) {
		firstErr = fmt.Errorf("%s: %w", r.name, r.err)
		log.Error("module failed, shutting down", "module", r.name, "err", r.err)
	}
	for i := range stages {
		cancels[i] = func() {}
		waits[i] = new(sync.WaitGroup)
	}
start:
	for i := len(stages) - 1; i >= 0; i-- {
		sctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		for _, m := range stages[i] {
			waits[i].Go(func() {
				err := m.mod.Run(sctx)
				if err != nil && sctx.Err() == nil {
					results <- result{m.name, err}
				}
			})
		}
		for _, m := range stages[i] {
			r, ok := m.mod.(readier)
			if !ok {
				continue
			}
			select {
			case <-r.Ready():
			case res := <-results:
				fail(res)
				break start
			case <-ctx.Done():
				break start
			}
		}
	}
	if firstErr == nil {
		select {
		case <-ctx.Done():
		case r := <-results:
			fail(r)
		}
	}
	deadline := time.After(stopTimeout)
	for i := range stages {
		cancels[i]()
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
