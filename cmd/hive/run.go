package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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

// result is a module's Run that failed while its stage still ran.
type result struct {
	name string
	err  error
}

// stage is one set of modules started and stopped together.
type stage struct {
	mods   []named
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// runStages runs every module until ctx ends or one fails, then stops the
// stages in order: each stage's modules are stopped and awaited before the
// next stage's. Stages start in the reverse order, each waiting until the
// later stage's modules are ready, so a consumer is subscribed before its
// producer publishes (the first tick reaches the SSE history) and is still
// there when the producer publishes its last event. onReady, if set, runs
// once every module is ready. It returns the first module failure, if any.
func runStages(ctx context.Context, log *slog.Logger, stopTimeout time.Duration, onReady func(), mods ...[]named) error {
	results := make(chan result, 16)
	stages := make([]*stage, len(mods))
	for i := range mods {
		stages[i] = &stage{mods: mods[i], cancel: func() {}}
	}
	var firstErr error
	fail := func(r result) {
		// Module errors name their module already ("gateway: listen ...").
		firstErr = r.err
		if !strings.HasPrefix(r.err.Error(), r.name+": ") {
			firstErr = fmt.Errorf("%s: %w", r.name, r.err)
		}
		log.Error("module failed, shutting down", "module", r.name, "err", r.err)
	}
	started := true
	for i := len(stages) - 1; i >= 0 && started; i-- {
		var r *result
		started, r = stages[i].start(ctx, results)
		if r != nil {
			fail(*r)
		}
	}
	if started {
		if onReady != nil {
			onReady()
		}
		select {
		case <-ctx.Done():
		case r := <-results:
			fail(r)
		}
	}
	deadline := time.After(stopTimeout)
	for _, s := range stages {
		s.cancel()
		done := make(chan struct{})
		go func() { s.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-deadline:
			return errors.Join(firstErr, errors.New("shutdown timed out"))
		}
	}
	return firstErr
}

// start runs the stage's modules and waits until each is ready. It
// reports false when it stopped waiting: ctx ended, or a module failed
// (r, that failure).
func (s *stage) start(ctx context.Context, results chan result) (ok bool, r *result) {
	sctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for _, m := range s.mods {
		s.wg.Go(func() {
			err := m.mod.Run(sctx)
			if err != nil && sctx.Err() == nil {
				results <- result{m.name, err}
			}
		})
	}
	for _, m := range s.mods {
		rd, isReadier := m.mod.(readier)
		if !isReadier {
			continue
		}
		select {
		case <-rd.Ready():
		case res := <-results:
			return false, &res
		case <-ctx.Done():
			return false, nil
		}
	}
	return true, nil
}
