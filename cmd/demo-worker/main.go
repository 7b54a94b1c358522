// Command demo-worker behaves like an LLM worker for tests, demos and
// compose: it accepts the worker flags the hive passes, serves /health on
// --port, burns a share of one core and holds a given amount of memory.
// It serves no model.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// options are the demo worker's flags.
type options struct {
	workerID, model, hpath string
	device, port, memMiB   int
	cpu                    float64
	serve, child, ignore   bool
	healthy                time.Duration
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.workerID, "worker-id", "", "worker id (informational)")
	flag.StringVar(&o.model, "model", "", "model name (informational)")
	flag.IntVar(&o.device, "device", 0, "device index (informational)")
	flag.IntVar(&o.port, "port", 0, "port of the /health endpoint")
	_ = flag.String("queen-url", "", "Queen URL (accepted, unused)")
	flag.Float64Var(&o.cpu, "cpu", 0.05, "share of one core to burn, 0..1 (a little by default, as a worker between requests)")
	flag.IntVar(&o.memMiB, "mem-mib", 64, "MiB of memory to allocate and keep resident")
	flag.BoolVar(&o.serve, "http", true, "serve /health on --port")
	flag.DurationVar(&o.healthy, "healthy-for", 0, "answer /health with 200 for this long after the start, then 503 (0: always 200)")
	flag.StringVar(&o.hpath, "health-path", "/health", "the path of the health endpoint")
	flag.BoolVar(&o.child, "term-ignoring-child", false, "start a child, in this worker's process group, that ignores SIGTERM")
	flag.BoolVar(&o.ignore, "ignore-term", false, "ignore SIGTERM and sleep until killed (the child's mode)")
	flag.Parse()
	return o
}

func main() {
	o := parseFlags()
	if o.ignore {
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("demo-worker child: ignoring SIGTERM, pid", os.Getpid())
		for {
			time.Sleep(time.Hour) // select{} alone would be a deadlock to the runtime
		}
	}
	if o.child {
		c := exec.Command(os.Args[0], "--ignore-term")
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if err := c.Start(); err != nil {
			fail(1, "child:", err)
		}
		fmt.Println("demo-worker: started a SIGTERM-ignoring child, pid", c.Process.Pid)
	}
	started := time.Now()
	if o.cpu < 0 || o.cpu > 1 || o.memMiB < 0 {
		fail(2, "--cpu must be in 0..1 and --mem-mib >= 0")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	mem := make([]byte, o.memMiB<<20)
	for i := 0; i < len(mem); i += os.Getpagesize() {
		mem[i] = 1 // touch every page so it is resident, not just reserved
	}
	go burn(ctx, o.cpu)
	if o.serve {
		srv, err := serveHealth(o, started)
		if err != nil {
			fail(1, err)
		}
		defer srv.Close()
	}
	fmt.Printf("demo-worker %s ready: model=%s port=%d pid=%d mem=%dMiB cpu=%.2f\n", o.workerID, o.model, o.port, os.Getpid(), o.memMiB, o.cpu)
	<-ctx.Done()
	runtime.KeepAlive(mem)
}

func fail(code int, what ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"demo-worker:"}, what...)...)
	os.Exit(code)
}

// serveHealth answers the health path on 127.0.0.1:port: 200 with the
// worker's id, model and device, or 503 once --healthy-for has passed.
func serveHealth(o options, started time.Time) (*http.Server, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(o.port)))
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+o.hpath, func(w http.ResponseWriter, _ *http.Request) {
		if o.healthy > 0 && time.Since(started) > o.healthy {
			http.Error(w, `{"status":"unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, `{"status":"ok","worker_id":%q,"model":%q,"device":%d}`, o.workerID, o.model, o.device)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "demo-worker:", err)
		}
	}()
	return srv, nil
}

// burn keeps one goroutine busy for share of every 10 ms slice.
func burn(ctx context.Context, share float64) {
	if share <= 0 {
		return
	}
	const slice = 10 * time.Millisecond
	busy := time.Duration(float64(slice) * share)
	x := 0
	for ctx.Err() == nil {
		start := time.Now()
		for time.Since(start) < busy {
			x++
		}
		if rest := slice - busy; rest > 0 {
			time.Sleep(rest)
		}
	}
	_ = x
}
