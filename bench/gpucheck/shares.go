package main

import "github.com/rbee/hive/bus/wire"

// checkShares checks what gpu_util_source promises with two workers
// time-slicing a GPU: the busy one sampled; the lighter one, where the
// driver has no sample of it (the H200 often had none), no_sample, never
// a confident 0 that says "sampled".
func (c *check) checkShares(a, b []wire.ProcessStats) {
	na, _ := countSources(a)
	nb, zero := countSources(b)
	c.check("busy share", len(a) > 0 && na[wire.GPUSampled] == len(a), "busy worker's gpu_util_source over %d events: %v (want sampled)", len(a), na)
	c.check("lighter share", len(b) > 0 && zero == 0 && nb[wire.GPUSampled]+nb[wire.GPUNoSample] == len(b),
		"lighter worker's gpu_util_source over %d events: %v, %d sampled at 0 (want sampled > 0 or no_sample)", len(b), nb, zero)
}

// countSources counts events by gpu_util_source, and those that say
// sampled with a share of 0.
func countSources(ss []wire.ProcessStats) (n map[string]int, sampledZero int) {
	n = map[string]int{}
	for _, s := range ss {
		n[s.GPUUtilSource]++
		if s.GPUUtilSource == wire.GPUSampled && s.GPUUtilPct == 0 {
			sampledZero++
		}
	}
	return n, sampledZero
}
