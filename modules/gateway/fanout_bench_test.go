package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rbee/hive/bus/bustest"
	"github.com/rbee/hive/bus/wire"
)

func BenchmarkEncodeFrame(b *testing.B) {
	payload := []byte(`{"type":"telemetry","pad":"` + strings.Repeat("x", 2000) + `"}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = encodeFrame(123456, "heartbeat", payload)
	}
}

// BenchmarkSSEEndToEnd measures one 2 KB telemetry event from a bus
// publish until every one of n SSE clients (real HTTP over loopback) has
// read its data: line.
func BenchmarkSSEEndToEnd(b *testing.B) {
	payload := `{"type":"telemetry","pad":"` + strings.Repeat("x", 2000) + `"}`
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			bb := bustest.Start(b)
			g, err := New(Config{Listen: "127.0.0.1:0", HiveID: "h", QueueSize: 64}, bb, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- g.Run(ctx) }()
			var readers sync.WaitGroup
			// Cancelling ends the client requests and the gateway; then the
			// readers and Run return.
			defer func() { cancel(); readers.Wait(); <-done }()
			<-g.Ready()
			pub, _ := bb.Connect("bench")
			got := make(chan struct{}, n*4)
			tr := &http.Transport{MaxIdleConnsPerHost: n}
			defer tr.CloseIdleConnections()
			for range n {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.Addr().String()+"/v1/heartbeats/stream", nil)
				resp, err := (&http.Client{Transport: tr}).Do(req)
				if err != nil {
					b.Fatal(err)
				}
				readers.Go(func() {
					defer resp.Body.Close()
					sc := bufio.NewScanner(resp.Body)
					sc.Buffer(make([]byte, 64<<10), 64<<10)
					for sc.Scan() {
						if strings.HasPrefix(sc.Text(), "data: ") {
							got <- struct{}{}
						}
					}
				})
			}
			for g.fanout.numClients() < n {
				time.Sleep(time.Millisecond)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := pub.Publish(wire.SubjectTelemetry, []byte(payload)); err != nil {
					b.Fatal(err)
				}
				for range n {
					<-got
				}
			}
			b.StopTimer()
			if k := g.fanout.kicked.Load(); k != 0 {
				b.Fatalf("%d clients kicked", k)
			}
		})
	}
}
