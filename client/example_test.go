package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/rbee/hive/client"
)

// A stand-in for a hive that serves one event, so the example runs
// anywhere; point URL at a real hive (http://gpu-01:7835) instead.
func fakeHive() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 3000\nid: 1764000000000\nevent: heartbeat\n"+
			`data: {"type":"telemetry","hive_id":"gpu-01","hive_info":{"id":"gpu-01"},"timestamp":"2026-11-27T10:00:00+00:00",`+
			`"workers":[{"pid":4242,"group":"llm","instance":"9301","cpu_pct":99.5,"rss_mb":262,"model":"tinyllama"},`+
			`{"pid":4243,"group":"llm","instance":"9302","cpu_pct":0.5,"rss_mb":12,"model":null}]}`+"\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
}

func ExampleStream() {
	srv := fakeHive()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	s := &client.Stream{URL: srv.URL}
	_ = s.Run(ctx, func(ev client.Event) {
		for _, w := range ev.Telemetry.Workers {
			model := "an unknown model" // a worker the hive cannot name has "model": null
			if w.Model != nil {
				model = *w.Model
			}
			fmt.Printf("%s: pid %d serves %s at %.1f%% CPU\n", ev.Telemetry.HiveID, w.PID, model, float64(w.CPUPct))
		}
		cancel() // one event is enough here
	})
	fmt.Println("resume from", s.LastID())
	// Output:
	// gpu-01: pid 4242 serves tinyllama at 99.5% CPU
	// gpu-01: pid 4243 serves an unknown model at 0.5% CPU
	// resume from 1764000000000
}
