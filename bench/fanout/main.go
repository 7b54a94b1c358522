// Command fanout is the SSE load generator of `make bench-fanout`: N
// clients on one stream, and, over a window, the delivery ratio, the
// latency from each event's publish time (its "timestamp") to its
// arrival, and the server's CPU and RSS from /proc. Delivery counts events
// by their publish time, so events in flight at the window's edges are
// neither lost nor extra.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rbee/hive/internal/proctest"
)

func main() {
	url := flag.String("url", "", "SSE URL")
	pid := flag.Int("pid", 0, "server pid, for CPU and RSS")
	name := flag.String("name", "server", "label for the output line")
	clients := flag.Int("clients", 1000, "SSE clients")
	window := flag.Duration("window", 30*time.Second, "measuring window")
	publishURL := flag.String("publish-url", "", "Centrifugo: its HTTP API publish URL; the generator publishes one ~2 KB event a second")
	apiKey := flag.String("api-key", "", "Centrifugo: the HTTP API key")
	jwtSecret := flag.String("jwt-secret", "", "Centrifugo: HMAC secret for the clients' connection token (channel hive)")
	caFile := flag.String("ca-file", "", "PEM CA of an https:// server")
	flag.Parse()
	if *caFile != "" {
		b, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		roots = x509.NewCertPool()
		roots.AppendCertsFromPEM(b)
		publisher = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	}
	if *jwtSecret != "" {
		*url += "?cf_connect=" + neturl.QueryEscape(`{"token":"`+token(*jwtSecret)+`"}`)
	}
	if *publishURL != "" {
		go publish(*publishURL, *apiKey)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &recorder{published: map[string]bool{}}
	ok := r.connect(ctx, *url, *clients)
	time.Sleep(3 * time.Second) // everyone has the snapshot; steady state
	c0 := cpu(*pid)
	r.mu.Lock()
	r.t0 = time.Now()
	r.mu.Unlock()
	time.Sleep(*window)
	r.mu.Lock()
	r.t1 = time.Now()
	r.mu.Unlock()
	c1 := cpu(*pid)
	time.Sleep(2 * time.Second) // events published just before t1 arrive
	r.mu.Lock()
	defer r.mu.Unlock()
	delivery := 0.0
	if len(r.published) > 0 {
		delivery = float64(r.received) / float64(len(r.published)*ok)
	}
	slices.Sort(r.lat)
	q := func(p float64) float64 {
		if len(r.lat) == 0 {
			return -1
		}
		return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))]
	}
	fmt.Printf("%-12s clients %6d (connected %d)  delivery %.3f  cpu %6.2f%%  rss %6.1f MiB  latency p50 %6.1f ms  p99 %6.1f ms\n",
		*name, *clients, ok, delivery, (c1-c0)/r.t1.Sub(r.t0).Seconds()*100, rssMiB(*pid), q(0.5), q(0.99))
}

// roots verifies an https:// server (-ca-file); nil is the system's.
var roots *x509.CertPool

// publisher posts to Centrifugo's API, trusting roots too (set in main
// before the generator starts).
var publisher = http.DefaultClient

// recorder keeps what the clients received inside the window [t0, t1).
type recorder struct {
	mu        sync.Mutex
	lat       []float64 // ms from an event's timestamp to its arrival
	published map[string]bool
	received  int
	t0, t1    time.Time
}

// connect opens n SSE clients to url and returns how many connected.
func (r *recorder) connect(ctx context.Context, url string, n int) int {
	tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true,
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	hc := &http.Client{Transport: tr}
	connected := make(chan bool, n)
	for range n {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := hc.Do(req)
			if err != nil {
				connected <- false
				return
			}
			defer resp.Body.Close()
			connected <- true
			r.read(resp.Body)
		}()
	}
	ok := 0
	for range n {
		if <-connected {
			ok++
		}
	}
	return ok
}

// read records every event of one stream.
func (r *recorder) read(body io.Reader) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		ts, ok := timestamp(sc.Bytes())
		if !ok {
			continue
		}
		now := time.Now()
		pub, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		r.mu.Lock()
		if !r.t0.IsZero() && !pub.Before(r.t0) && (r.t1.IsZero() || pub.Before(r.t1)) {
			r.published[ts] = true
			r.received++
			r.lat = append(r.lat, float64(now.Sub(pub))/float64(time.Millisecond))
		}
		r.mu.Unlock()
	}
}

// timestamp finds "timestamp":"..." in a data: line without decoding it:
// the load generator shares the machine with the server.
func timestamp(line []byte) (string, bool) {
	if !bytes.HasPrefix(line, []byte("data: ")) {
		return "", false
	}
	i := bytes.Index(line, []byte(`"timestamp":"`))
	if i < 0 {
		return "", false
	}
	rest := line[i+len(`"timestamp":"`):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	return string(rest[:j]), true
}

func cpu(pid int) float64 {
	c, err := proctest.CPUSeconds(pid)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-fanout:", err)
		os.Exit(1)
	}
	return c
}

func rssMiB(pid int) float64 {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return -1
}

// token is an HS256 JWT subscribing the client to channel "hive".
func token(secret string) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body := enc.EncodeToString([]byte(`{"sub":"bench","channels":["hive"]}`))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(head + "." + body))
	return head + "." + body + "." + enc.EncodeToString(mac.Sum(nil))
}

// publish sends a ~2 KB event carrying its publish time to Centrifugo once
// a second, on the second, as the hive's ticker does.
func publish(url, key string) {
	pad := strings.Repeat("x", 2000)
	for {
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
		body := fmt.Sprintf(`{"channel":"hive","data":{"timestamp":%q,"pad":%q}}`, time.Now().UTC().Format(time.RFC3339Nano), pad)
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("X-API-Key", key)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := publisher.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}
