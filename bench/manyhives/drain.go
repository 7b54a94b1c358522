package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rbee/hive/internal/hubcluster"
)

// drained is what the hub spent while n hives forwarded what they kept
// through an outage.
type drained struct {
	outage    time.Duration
	took      time.Duration // from the nodes' start until the stream held every event
	hubCPU    float64       // % of one core, 3 nodes together, over took
	hubRSSMax float64       // MiB, 3 nodes together, sampled each second
	stored    uint64        // messages stored over took
}

// drain stops every hub node for outage, starts them again and measures
// until the stream holds every event the n hives stamped since the stop
// (each hive ticks once a second and forwards at most nats.hub-rate, 10,
// a second).
func drain(ctx context.Context, cl *hubcluster.Cluster, stream jetstream.Stream, n int, outage time.Duration) drained {
	d := drained{outage: outage}
	before := streamMsgs(ctx, stream)
	stopped := time.Now()
	for i := range cl.Nodes {
		cl.StopNode(i)
	}
	time.Sleep(outage)
	for i := range cl.Nodes {
		check(cl.StartNode(i))
	}
	t0 := time.Now()
	cpu0 := 0.0
	for i := range cl.Nodes {
		cpu0 += cpu(cl.PID(i))
	}
	readyCtx, cancel := context.WithTimeout(ctx, time.Minute)
	check(cl.Ready(readyCtx))
	cancel()
	var now uint64
	for {
		rss := 0.0
		for i := range cl.Nodes {
			rss += rssMiB(cl.PID(i))
		}
		d.hubRSSMax = max(d.hubRSSMax, rss)
		// Every event stamped since the stop, less the last two ticks'.
		want := before + uint64(n)*uint64(max(time.Since(stopped).Seconds()-2, 0))
		if now = streamMsgs(ctx, stream); now >= want {
			break
		}
		if time.Since(t0) > 20*time.Minute {
			check(fmt.Errorf("the stream holds %d of %d after 20 minutes", now, want))
		}
		time.Sleep(time.Second)
	}
	d.took = time.Since(t0)
	cpu1 := 0.0
	for i := range cl.Nodes {
		cpu1 += cpu(cl.PID(i))
	}
	d.hubCPU = 100 * (cpu1 - cpu0) / d.took.Seconds()
	d.stored = now - before
	return d
}

// streamMsgs is the stream's message count, asked until a node answers.
func streamMsgs(ctx context.Context, stream jetstream.Stream) uint64 {
	for {
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := stream.Info(ictx)
		cancel()
		if err == nil {
			return info.State.Msgs
		}
		if ctx.Err() != nil {
			check(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (d drained) print(n int, base result) {
	baseCPU := 0.0
	for _, c := range base.hubCPU {
		baseCPU += c
	}
	fmt.Printf("%d hives, every hub node down %v: the stream held every event %v after the nodes started\n", n, d.outage, d.took.Round(100*time.Millisecond))
	fmt.Printf("  stored %d messages (%.0f/s); hub CPU %.1f %% of a core (3 nodes, %.2f %% per hive over the control), RSS at most %.0f MiB\n",
		d.stored, float64(d.stored)/d.took.Seconds(), d.hubCPU, (d.hubCPU-baseCPU)/float64(n), d.hubRSSMax)
}
