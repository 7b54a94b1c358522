package engine

import (
	"testing"
	"time"
)

func reading(engine string, vals map[Field]float64, progress float64, hasProgress bool) *Reading {
	r := &Reading{Engine: engine, Progress: progress, HasProgress: hasProgress}
	for f, v := range vals {
		r.set(f, v)
	}
	return r
}

// Rates from counter deltas over the time between reads; a counter that
// went back (an engine restart) counts from 0; a figure the engine lacks
// is absent.
func TestTrackerRates(t *testing.T) {
	var tr Tracker
	t0 := time.Unix(1000, 0)
	tr.Update(reading(VLLM, map[Field]float64{PromptTokens: 1000, GenTokens: 500, Running: 2}, 0, false), t0, time.Minute)
	if l := tr.Load(t0); l.GenTPS != nil || l.PromptTPS != nil {
		t.Fatal("a rate from one reading")
	}
	tr.Update(reading(VLLM, map[Field]float64{PromptTokens: 4000, GenTokens: 900, Running: 2}, 0, false), t0.Add(2*time.Second), time.Minute)
	l := tr.Load(t0.Add(2*time.Second + 180*time.Millisecond))
	if *l.PromptTPS != 1500 || *l.GenTPS != 200 || l.AgeMS != 180 || *l.Running != 2 || l.Queue != nil || l.KVUsedRatio != nil {
		t.Fatalf("load %+v", l)
	}
	tr.Update(reading(VLLM, map[Field]float64{PromptTokens: 100, GenTokens: 50}, 0, false), t0.Add(3*time.Second), time.Minute)
	if l := tr.Load(t0.Add(3 * time.Second)); *l.PromptTPS != 100 || *l.GenTPS != 50 {
		t.Fatalf("after a reset: %v %v", *l.PromptTPS, *l.GenTPS)
	}
	// Used tokens over capacity where the engine has no ratio.
	tr.Update(reading(SGLang, map[Field]float64{KVUsedTokens: 250, KVCapacity: 1000}, 0, false), t0.Add(4*time.Second), time.Minute)
	if l := tr.Load(t0.Add(4 * time.Second)); l.Engine != SGLang || *l.KVUsedRatio != 0.25 || l.GenTPS != nil {
		t.Fatalf("another engine on the port: %+v", l)
	}
}

// Stalled: requests running and no progress for stallAfter. Never when
// idle, queued only, or with no progress family to judge by.
func TestTrackerStall(t *testing.T) {
	const after = 30 * time.Second
	t0 := time.Unix(1000, 0)
	step := func(tr *Tracker, i int, vals map[Field]float64, progress float64, has bool) bool {
		tr.Update(reading(VLLM, vals, progress, has), t0.Add(time.Duration(i)*time.Second), after)
		return tr.Stalled()
	}
	var moving, stuck, idle, queued, blind Tracker
	for i := range 120 {
		if step(&moving, i, map[Field]float64{Running: 4}, float64(i*10), true) {
			t.Fatalf("a moving engine stalled at %d s", i)
		}
		if step(&idle, i, map[Field]float64{Running: 0}, 5, true) || step(&queued, i, map[Field]float64{Running: 0, Queue: 40}, 5, true) {
			t.Fatalf("an idle or queue-only engine stalled at %d s", i)
		}
		if step(&blind, i, map[Field]float64{Running: 3}, 0, false) {
			t.Fatal("stalled without a progress family")
		}
		got := step(&stuck, i, map[Field]float64{Running: 2}, 7, true)
		if want := i >= 30; got != want {
			t.Fatalf("stuck engine at %d s: stalled %v, want %v", i, got, want)
		}
	}
	// It moves again: no longer stalled.
	if step(&stuck, 121, map[Field]float64{Running: 2}, 8, true) {
		t.Fatal("still stalled after progress")
	}
}

// A push when the queue or running count moves by Requests or by Ratio
// of what was pushed last.
func TestTrackerMoved(t *testing.T) {
	d := Delta{Requests: 4, Ratio: 0.25}
	var tr Tracker
	t0 := time.Unix(1000, 0)
	seq := []struct {
		queue, running float64
		push           bool
	}{{10, 8, false}, {11, 8, false}, {13, 8, true}, {13, 9, false}, {13, 11, true}, {40, 11, true}, {40, 11, false}}
	for i, s := range seq {
		tr.Update(reading(VLLM, map[Field]float64{Queue: s.queue, Running: s.running}, 0, false), t0.Add(time.Duration(i)*time.Second), time.Minute)
		if got := tr.Moved(d); got != s.push {
			t.Fatalf("step %d (%v, %v): push %v, want %v", i, s.queue, s.running, got, s.push)
		}
	}
}
