package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// events records what the fake modules did, in order.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.log = append(e.log, s)
	e.mu.Unlock()
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.log)
}

// fakeModule records its start and stop. It fails with startErr before
// it is ready, with fail's error while it runs, and holds its stop until
// hold is closed (a module that ignores the shutdown).
type fakeModule struct {
	name     string
	ev       *events
	ready    chan struct{}
	startErr error
	fail     chan error
	hold     chan struct{}
}

func newFake(name string, ev *events) *fakeModule {
	return &fakeModule{name: name, ev: ev, ready: make(chan struct{}), fail: make(chan error, 1)}
}

func (f *fakeModule) Ready() <-chan struct{} { return f.ready }

func (f *fakeModule) Run(ctx context.Context) error {
	f.ev.add("start " + f.name)
	if f.startErr != nil {
		return f.startErr
	}
	close(f.ready)
	select {
	case <-ctx.Done():
	case err := <-f.fail:
		f.ev.add("fail " + f.name)
		return err
	}
	if f.hold != nil {
		<-f.hold
	}
	f.ev.add("stop " + f.name)
	return nil
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// index is where s is in log, -1 if absent.
func index(log []string, s string) int { return slices.Index(log, s) }

// Stages start from the last, each after the later one is ready, and stop
// from the first, each after the earlier one has returned.
func TestRunStagesOrder(t *testing.T) {
	ev := &events{}
	a, b, c1, c2 := newFake("a", ev), newFake("b", ev), newFake("c1", ev), newFake("c2", ev)
	ctx, cancel := context.WithCancel(context.Background())
	readyAt := -1
	done := make(chan error, 1)
	go func() {
		done <- runStages(ctx, discardLog(), 5*time.Second, func() { readyAt = len(ev.list()); cancel() },
			[]named{{"a", a}}, []named{{"b", b}}, []named{{"c1", c1}, {"c2", c2}})
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	log := ev.list()
	if len(log) != 8 || readyAt != 4 {
		t.Fatalf("log %v, ready after %d events", log, readyAt)
	}
	for _, c := range []string{"c1", "c2"} {
		if index(log, "start "+c) > index(log, "start b") || index(log, "stop "+c) < index(log, "stop b") {
			t.Errorf("%s not started before b and stopped after it: %v", c, log)
		}
	}
	if index(log, "start b") > index(log, "start a") || index(log, "stop a") > index(log, "stop b") {
		t.Errorf("a and b out of order: %v", log)
	}
}

// A module that fails before it is ready stops the stages already
// started; the earlier ones never start, and its error is returned.
func TestRunStagesFailingStart(t *testing.T) {
	ev := &events{}
	a, b, c := newFake("a", ev), newFake("b", ev), newFake("c", ev)
	b.startErr = errors.New("no port")
	called := false
	err := runStages(context.Background(), discardLog(), 5*time.Second, func() { called = true },
		[]named{{"a", a}}, []named{{"b", b}}, []named{{"c", c}})
	if err == nil || !strings.Contains(err.Error(), "b: no port") {
		t.Fatalf("err %v", err)
	}
	log := ev.list()
	if called || index(log, "start a") >= 0 || index(log, "stop c") < 0 {
		t.Fatalf("ready called %v, log %v", called, log)
	}
}

// A module that fails while running stops every module, in order.
func TestRunStagesFailureWhileRunning(t *testing.T) {
	ev := &events{}
	a, b := newFake("a", ev), newFake("b", ev)
	err := runStages(context.Background(), discardLog(), 5*time.Second, func() { b.fail <- errors.New("bus gone") },
		[]named{{"a", a}}, []named{{"b", b}})
	if err == nil || !strings.Contains(err.Error(), "b: bus gone") {
		t.Fatalf("err %v", err)
	}
	if log := ev.list(); index(log, "stop a") < 0 || index(log, "fail b") < 0 {
		t.Fatalf("log %v", log)
	}
}

// A module that does not stop within the budget makes the stop an error;
// the stages after it are not waited for.
func TestRunStagesStopTimeout(t *testing.T) {
	ev := &events{}
	a, b := newFake("a", ev), newFake("b", ev)
	a.hold = make(chan struct{})
	defer close(a.hold)
	ctx, cancel := context.WithCancel(context.Background())
	err := runStages(ctx, discardLog(), 50*time.Millisecond, cancel, []named{{"a", a}}, []named{{"b", b}})
	if err == nil || !strings.Contains(err.Error(), "shutdown timed out") {
		t.Fatalf("err %v", err)
	}
	if log := ev.list(); index(log, "stop b") >= 0 {
		t.Fatalf("b stopped while a still ran: %v", log)
	}
}
