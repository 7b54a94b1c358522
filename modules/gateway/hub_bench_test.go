package gateway

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkHubPublish measures one telemetry event fanned out to n
// subscribers: the frame is built once and queued n times. Each queue is
// drained inside the loop, so every op is one delivered event per client.
func BenchmarkHubPublish(b *testing.B) {
	payload := []byte(`{"type":"telemetry","pad":"` + strings.Repeat("x", 2000) + `"}`)
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			h := newHub(60, 16)
			clients := make([]*client, n)
			for i := range clients {
				clients[i], _, _ = h.subscribe(resume{})
			}
			b.ReportAllocs()
			for b.Loop() {
				h.publish("heartbeat", payload)
				for _, c := range clients {
					<-c.queue
				}
			}
			if k := h.kicked.Load(); k != 0 {
				b.Fatalf("%d clients kicked", k)
			}
		})
	}
}

func BenchmarkEncodeFrame(b *testing.B) {
	payload := []byte(`{"type":"telemetry","pad":"` + strings.Repeat("x", 2000) + `"}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = encodeFrame(123456, "heartbeat", payload)
	}
}
