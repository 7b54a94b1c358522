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

func main() {
	var (
		workerID = flag.String("worker-id", "", "worker id (informational)")
		model    = flag.String("model", "", "model name (informational)")
		device   = flag.Int("device", 0, "device index (informational)")
		port     = flag.Int("port", 0, "port of the /health endpoint")
		_        = flag.String("queen-url", "", "Queen URL (accepted, unused)")
		cpu      = flag.Float64("cpu", 0.05, "share of one core to burn, 0..1 (a little by default, as a worker between requests)")
		memMiB   = flag.Int("mem-mib", 64, "MiB of memory to allocate and keep resident")
		serve    = flag.Bool("http", true, "serve /health on --port")
		healthy  = flag.Duration("healthy-for", 0, "answer /health with 200 for this long after the start, then 503 (0: always 200)")
		hpath    = flag.String("health-path", "/health", "the path of the health endpoint")
		child    = flag.Bool("term-ignoring-child", false, "start a child, in this worker's process group, that ignores SIGTERM")
		ignore   = flag.Bool("ignore-term", false, "ignore SIGTERM and sleep until killed (the child's mode)")
	)
	flag.Parse()
	if *ignore {
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("demo-worker child: ignoring SIGTERM, pid", os.Getpid())
		for {
			time.Sleep(time.Hour) // select{} alone would be a deadlock to the runtime
		}
	}
	if *child {
		c := exec.Command(os.Args[0], "--ignore-term")
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "demo-worker: child:", err)
			os.Exit(1)
		}
		fmt.Println("demo-worker: started a SIGTERM-ignoring child, pid", c.Process.Pid)
	}
	started := time.Now()
	if *cpu < 0 || *cpu > 1 || *memMiB < 0 {
		fmt.Fprintln(os.Stderr, "demo-worker: --cpu must be in 0..1 and --mem-mib >= 0")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	mem := make([]byte, *memMiB<<20)
	for i := 0; i < len(mem); i += os.Getpagesize() {
		mem[i] = 1 // touch every page so it is resident, not just reserved
	}
	go burn(ctx, *cpu)

	if *serve {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
		if err != nil {
			fmt.Fprintln(os.Stderr, "demo-worker:", err)
			os.Exit(1)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET "+*hpath, func(w http.ResponseWriter, _ *http.Request) {
			if *healthy > 0 && time.Since(started) > *healthy {
				http.Error(w, `{"status":"unavailable"}`, http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintf(w, `{"status":"ok","worker_id":%q,"model":%q,"device":%d}`, *workerID, *model, *device)
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintln(os.Stderr, "demo-worker:", err)
			}
		}()
		defer srv.Close()
	}
	fmt.Printf("demo-worker %s ready: model=%s port=%d pid=%d mem=%dMiB cpu=%.2f\n", *workerID, *model, *port, os.Getpid(), *memMiB, *cpu)
	<-ctx.Done()
	runtime.KeepAlive(mem)
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
