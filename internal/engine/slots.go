package engine

import (
	"encoding/json"
	"errors"
)

// slot is what is read of one of llama.cpp's slots (GET /slots): whether
// it is processing (is_processing in newer builds, state 1 in older
// ones) and its context size.
type slot struct {
	IsProcessing *bool `json:"is_processing"`
	State        *int  `json:"state"`
	NCtx         *int  `json:"n_ctx"`
}

// maxSlots bounds the slots read of one answer.
const maxSlots = 4096

// ParseSlots reads llama.cpp's /slots answer, for a server run without
// --metrics: running is the slots processing, the KV capacity their
// contexts. It has no queue, counters or progress: those are left out.
func ParseSlots(body []byte, r *Reading) error {
	*r = Reading{}
	var slots []slot
	if err := json.Unmarshal(body, &slots); err != nil {
		return err
	}
	if len(slots) == 0 || len(slots) > maxSlots {
		return errors.New("no slots")
	}
	var busy, ctx float64
	for _, s := range slots {
		switch {
		case s.IsProcessing != nil:
			if *s.IsProcessing {
				busy++
			}
		case s.State != nil:
			if *s.State != 0 {
				busy++
			}
		default:
			return errors.New("a slot without is_processing or state: not llama.cpp's /slots")
		}
		if s.NCtx != nil && *s.NCtx > 0 {
			ctx += float64(*s.NCtx)
		}
	}
	r.Engine, r.Series = LlamaCPP, len(slots)
	r.set(Running, busy)
	if ctx > 0 {
		r.set(KVCapacity, ctx)
	}
	return nil
}
