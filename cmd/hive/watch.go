package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/client"
	"github.com/rbee/hive/internal/settings"
	"github.com/rbee/hive/internal/text"
)

// watchOptions are `hive watch`'s flags.
type watchOptions struct {
	url, natsURL, natsUser, natsPwFile, tokenFile, badToken string
	caFile, certFile, keyFile, hive                         string
	once, gpus                                              bool
	wait, timeout, history                                  time.Duration
}

func watchFlags(o *watchOptions, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("hive watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "http://127.0.0.1:7835", "hive base URL (SSE)")
	fs.StringVar(&o.natsURL, "nats", "", "NATS server (a hive's --nats-listen or a hub): every hive's workers")
	fs.StringVar(&o.natsUser, "nats-user", "", "NATS user (with --nats-password-file), e.g. the hub's named reader")
	fs.StringVar(&o.natsPwFile, "nats-password-file", "", "file holding the --nats-user password (mode 0600 or stricter)")
	fs.BoolVar(&o.once, "once", false, "print one table and exit")
	fs.DurationVar(&o.wait, "wait", 3*time.Second, "with --nats --once: how long to gather hives")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "with --url --once: how long to wait for the first event before giving up")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the API token (mode 0600 or stricter); or set HIVE_API_TOKEN")
	fs.StringVar(&o.badToken, "token", "", "refused: ps shows every argument; use --token-file or HIVE_API_TOKEN")
	fs.StringVar(&o.caFile, "ca-file", "", "PEM CA that an https:// hive's or a tls:// NATS server's certificate must verify against")
	fs.StringVar(&o.certFile, "cert-file", "", "client certificate (PEM) for a hive or NATS server that asks for one")
	fs.StringVar(&o.keyFile, "key-file", "", "its key")
	fs.DurationVar(&o.history, "history", 0, "with --nats at a hub cluster and --hive: print that hive's kept telemetry of this long ago up to now, one JSON event per line, and exit")
	fs.StringVar(&o.hive, "hive", "", "with --history: the hive id")
	fs.BoolVar(&o.gpus, "gpus", false, "the GPU table adds the headroom figures: memory reserved and free, SM active and occupancy, tensor and DRAM bandwidth (GPM, Hopper and newer), GPU time no worker's sample accounts for")
	return fs
}

// watch runs `hive watch`: a live table of workers, from one hive's SSE
// stream (--url) or every hive at a NATS server (--nats). --once prints one
// table and exits.
func watch(args []string, stdout, stderr io.Writer) int {
	var o watchOptions
	if err := watchFlags(&o, stderr).Parse(args); err != nil {
		return 2
	}
	token, natsOpts, err := watchCredentials(o.badToken, o.tokenFile, o.natsURL, o.natsUser, o.natsPwFile)
	if err != nil {
		fmt.Fprintln(stderr, "hive watch:", err)
		return 2
	}
	var httpc *http.Client
	if o.caFile != "" || o.certFile != "" {
		tc, err := client.TLSConfig(o.caFile, o.certFile, o.keyFile)
		if err != nil {
			fmt.Fprintln(stderr, "hive watch:", err)
			return 2
		}
		httpc = client.HTTPSClient(tc)
		natsOpts = append(natsOpts, nats.Secure(tc))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.history > 0 {
		if o.natsURL == "" || o.hive == "" {
			fmt.Fprintln(stderr, "hive watch: --history needs --nats (a hub) and --hive")
			return 2
		}
		return watchHistory(ctx, o.natsURL, natsOpts, o.hive, o.history, stdout, stderr)
	}
	t := &table{hives: map[string]wire.TelemetryEvent{}, out: stdout, live: !o.once, gpus: o.gpus}
	if o.natsURL != "" {
		return watchNATS(ctx, o, t, natsOpts, stderr)
	}
	return watchStream(ctx, o, t, &client.Stream{URL: o.url, Token: token, HTTPClient: httpc}, stderr)
}

// watchNATS fills t from every hive's telemetry at a NATS server; with
// --once it gathers for --wait, prints and exits.
func watchNATS(ctx context.Context, o watchOptions, t *table, natsOpts []nats.Option, stderr io.Writer) int {
	if o.once {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.wait)
		defer cancel()
	}
	err := (&client.NATS{URL: o.natsURL, Options: natsOpts}).Run(ctx, func(ev client.Event) { t.update(ev.Telemetry) })
	if o.once {
		t.print()
		if len(t.hives) == 0 {
			fmt.Fprintln(stderr, "hive watch: no telemetry within", o.wait)
			return 1
		}
		return 0
	}
	return watchExit(err, stderr)
}

// watchStream fills t from one hive's SSE stream; with --once it prints
// the first event, or gives up after --timeout with the reason (where it
// used to retry an unresolvable host or a wrong scheme for ever).
func watchStream(ctx context.Context, o watchOptions, t *table, s *client.Stream, stderr io.Writer) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.once {
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	var last error
	s.OnConnect = func(err error) {
		if err == nil {
			return
		}
		last = err
		if !o.once {
			fmt.Fprintf(stderr, "hive watch: %s (retrying %s)\n", text.Printable(err.Error()), o.url)
		}
	}
	err := s.Run(ctx, func(ev client.Event) {
		t.update(ev.Telemetry)
		if o.once {
			cancel()
		}
	})
	if o.once && len(t.hives) > 0 {
		t.print()
		return 0
	}
	if o.once && errors.Is(err, context.DeadlineExceeded) {
		why := "no answer"
		if last != nil {
			why = last.Error()
		}
		fmt.Fprintf(stderr, "hive watch: no telemetry from %s within %v: %s\n", o.url, o.timeout, text.Printable(why))
		return 1
	}
	return watchExit(err, stderr)
}

// watchExit is the exit code of a watch that ended with err: 0 for an
// interrupt or a finished --once.
func watchExit(err error, stderr io.Writer) int {
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintln(stderr, "hive watch:", text.Printable(err.Error()))
		return 1
	}
	return 0
}

// watchCredentials resolves the API token (HIVE_API_TOKEN or a private
// file) and the NATS options (a user with a password file). A secret on
// the command line is refused: any user on the host reads it with ps.
func watchCredentials(argToken, tokenFile, natsURL, natsUser, natsPwFile string) (string, []nats.Option, error) {
	opts := []nats.Option{nats.Timeout(5 * time.Second)}
	if argToken != "" {
		return "", nil, errors.New("--token is refused: ps shows every argument; use --token-file or HIVE_API_TOKEN")
	}
	if settings.URLsCarryPassword(natsURL) {
		return "", nil, errors.New("--nats carries a password, which ps shows: use --nats-user and --nats-password-file")
	}
	if (natsUser == "") != (natsPwFile == "") {
		return "", nil, errors.New("--nats-user and --nats-password-file go together")
	}
	if natsUser != "" {
		pw, err := readSecretFile(natsPwFile)
		if err != nil {
			return "", nil, fmt.Errorf("--nats-password-file: %w", err)
		}
		// A named hub user gets its replies under its own prefix.
		opts = append(opts, nats.UserInfo(natsUser, pw), nats.CustomInboxPrefix("_"+strings.ToUpper(natsUser)))
	}
	env, hasEnv := os.LookupEnv("HIVE_API_TOKEN")
	switch {
	case hasEnv && tokenFile != "":
		return "", nil, errors.New("both HIVE_API_TOKEN and --token-file are set; use one")
	case tokenFile != "":
		tok, err := readSecretFile(tokenFile)
		if err != nil {
			return "", nil, fmt.Errorf("--token-file: %w", err)
		}
		return tok, opts, nil
	}
	return strings.TrimSpace(env), opts, nil
}

// watchHistory prints one hive's events kept at a hub (client.History).
func watchHistory(ctx context.Context, url string, opts []nats.Option, hive string, ago time.Duration, stdout, stderr io.Writer) int {
	n := 0
	h := &client.History{URL: url, Options: opts}
	err := h.Since(ctx, hive, time.Now().Add(-ago), func(e client.Event) {
		n++
		b, _ := json.Marshal(e.Telemetry)
		fmt.Fprintf(stdout, "%s\n", text.Printable(string(b))) // still the same JSON
	})
	if err != nil {
		fmt.Fprintln(stderr, "hive watch:", text.Printable(err.Error()))
		return 1
	}
	fmt.Fprintf(stderr, "hive watch: %d events of %s in the last %v\n", n, hive, ago)
	return 0
}

// table is the latest event of every hive seen.
type table struct {
	hives map[string]wire.TelemetryEvent
	out   io.Writer
	live  bool
	gpus  bool // --gpus: the GPU table's headroom columns
}

func (t *table) update(ev wire.TelemetryEvent) {
	t.hives[ev.HiveID] = ev
	if t.live {
		fmt.Fprint(t.out, "\x1b[H\x1b[2J") // home, clear: redraw in place
		t.print()
	}
}

func (t *table) print() {
	w := tabwriter.NewWriter(t.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "HIVE\tPID\tMODEL\tINSTANCE\tSTATE\tCPU%\tRSS MiB\tREAD MB/s\tWRITE MB/s\tGPU%\tVRAM MiB\tQUEUE\tRUN\tKV%\tGEN TOK/S\tUPTIME")
	ids := make([]string, 0, len(t.hives))
	for id := range t.hives {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		ev := t.hives[id]
		ws := slices.Clone(ev.Workers)
		slices.SortFunc(ws, func(a, b wire.ProcessStats) int { return cmp.Compare(a.PID, b.PID) })
		sid := safeText(id, 64)
		if len(ws) == 0 {
			fmt.Fprintf(w, "%s\t-\t(no workers)\t\t\t\t\t\t\t\t\t\t\t\t\t\n", sid)
		}
		for _, p := range ws {
			model := "-"
			if p.Model != nil {
				model = safeText(*p.Model, 64)
			}
			state := cmp.Or(safeText(p.State, 16), "-")
			if p.Exit != nil && p.Exit.Signal != "" {
				state += " (" + safeText(p.Exit.Signal, 16) + ")"
			} else if p.Exit != nil && p.Exit.Code != nil {
				state += fmt.Sprintf(" (%d)", *p.Exit.Code)
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%.1f\t%d\t%.2f\t%.2f\t%s\t%d\t%s\t%s\n", sid, p.PID, model, safeText(p.Instance, 32), state,
				float64(p.CPUPct), p.RSSMB, float64(p.IOReadMBs), float64(p.IOWriteMBs), gpuShare(p), p.VRAMMB, loadColumns(p.Load),
				(time.Duration(p.UptimeS) * time.Second).String())
		}
	}
	_ = w.Flush()
	t.printHealth(ids)
	if t.live {
		fmt.Fprintf(t.out, "\n%d hive(s) at %s; Ctrl-C to quit\n", len(ids), time.Now().Format(time.TimeOnly))
	}
}

// safeText bounds a string from a hive or a peer and escapes what could
// steer the terminal (text.Printable), so no field can move the cursor,
// retitle the window or plant a link.
func safeText(s string, n int) string {
	return text.ClipPrintable(s, n)
}
