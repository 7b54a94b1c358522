// Command floorfanout is the naive SSE fan-out floor: plain net/http, one
// goroutine per client, the frame rendered once per event, a 16-slot
// channel per client (a full one drops the client). It publishes a ~2 KB
// event once a second carrying its publish time, as the hive does.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

type hub struct {
	mu      sync.Mutex
	clients map[chan []byte]struct{}
}

func main() {
	addr := flag.String("listen", "127.0.0.1:17950", "address")
	size := flag.Int("payload", 2048, "event size in bytes")
	flag.Parse()
	h := &hub{clients: map[chan []byte]struct{}{}}
	go func() {
		pad := strings.Repeat("x", *size)
		for seq := 1; ; seq++ {
			time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
			now := time.Now().UTC().Format(time.RFC3339Nano)
			frame := []byte(fmt.Sprintf("id: %d\nevent: heartbeat\ndata: {\"timestamp\":%q,\"pad\":%q}\n\n", seq, now, pad))
			h.mu.Lock()
			for c := range h.clients {
				select {
				case c <- frame:
				default:
					delete(h.clients, c)
					close(c)
				}
			}
			h.mu.Unlock()
		}
	}()
	http.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		c := make(chan []byte, 16)
		h.mu.Lock()
		h.clients[c] = struct{}{}
		h.mu.Unlock()
		defer func() {
			h.mu.Lock()
			if _, ok := h.clients[c]; ok {
				delete(h.clients, c)
			}
			h.mu.Unlock()
		}()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case f, ok := <-c:
				if !ok {
					return
				}
				if _, err := w.Write(f); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}
	})
	if err := http.ListenAndServe(*addr, nil); err != nil {
		fmt.Println(err)
	}
}
