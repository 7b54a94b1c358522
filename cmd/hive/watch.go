package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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
	"github.com/rbee/hive/internal/text"
)

// watch runs `hive watch`: a live table of workers, from one hive's SSE
// stream (--url) or every hive at a NATS server (--nats). --once prints one
// table and exits.
func watch(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hive watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:7835", "hive base URL (SSE)")
	natsURL := fs.String("nats", "", "NATS server (a hive's --nats-listen or a hub): every hive's workers")
	once := fs.Bool("once", false, "print one table and exit")
	wait := fs.Duration("wait", 3*time.Second, "with --nats --once: how long to gather hives")
	token := fs.String("token", os.Getenv("HIVE_API_TOKEN"), "API token (default $HIVE_API_TOKEN)")
	history := fs.Duration("history", 0, "with --nats at a hub cluster and --hive: print that hive's kept telemetry of this long ago up to now, one JSON event per line, and exit")
	hive := fs.String("hive", "", "with --history: the hive id")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *history > 0 {
		if *natsURL == "" || *hive == "" {
			fmt.Fprintln(stderr, "hive watch: --history needs --nats (a hub) and --hive")
			return 2
		}
		return watchHistory(ctx, *natsURL, *hive, *history, stdout, stderr)
	}
	t := &table{hives: map[string]wire.TelemetryEvent{}, out: stdout, live: !*once}
	var err error
	if *natsURL != "" {
		if *once {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *wait)
			defer cancel()
		}
		err = (&client.NATS{URL: *natsURL, Options: []nats.Option{nats.Timeout(5 * time.Second)}}).Run(ctx, func(ev client.Event) { t.update(ev.Telemetry) })
		if *once {
			t.print()
			if len(t.hives) == 0 {
				fmt.Fprintln(stderr, "hive watch: no telemetry within", *wait)
				return 1
			}
			return 0
		}
	} else {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		s := &client.Stream{URL: *url, Token: *token, OnConnect: func(err error) {
			if err != nil {
				fmt.Fprintln(stderr, "hive watch:", err, "(reconnecting)")
			}
		}}
		err = s.Run(ctx, func(ev client.Event) {
			t.update(ev.Telemetry)
			if *once {
				cancel()
			}
		})
		if *once && len(t.hives) > 0 {
			t.print()
			return 0
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintln(stderr, "hive watch:", err)
		return 1
	}
	return 0
}

// watchHistory prints one hive's events kept at a hub (client.History).
func watchHistory(ctx context.Context, url, hive string, ago time.Duration, stdout, stderr io.Writer) int {
	enc := json.NewEncoder(stdout)
	n := 0
	h := &client.History{URL: url, Options: []nats.Option{nats.Timeout(5 * time.Second)}}
	err := h.Since(ctx, hive, time.Now().Add(-ago), func(e client.Event) {
		n++
		_ = enc.Encode(e.Telemetry)
	})
	if err != nil {
		fmt.Fprintln(stderr, "hive watch:", err)
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
	fmt.Fprintln(w, "HIVE\tPID\tMODEL\tINSTANCE\tCPU%\tRSS MiB\tREAD MB/s\tWRITE MB/s\tGPU%\tVRAM MiB\tUPTIME")
	ids := make([]string, 0, len(t.hives))
	for id := range t.hives {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		ev := t.hives[id]
		ws := slices.Clone(ev.Workers)
		slices.SortFunc(ws, func(a, b wire.ProcessStats) int { return cmp.Compare(a.PID, b.PID) })
		if len(ws) == 0 {
			fmt.Fprintf(w, "%s\t-\t(no workers)\t\t\t\t\t\t\t\t\n", id)
		}
		for _, p := range ws {
			model := "-"
			if p.Model != nil {
				model = *p.Model
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%.1f\t%d\t%.2f\t%.2f\t%.0f\t%d\t%s\n", id, p.PID, model, p.Instance,
				float64(p.CPUPct), p.RSSMB, float64(p.IOReadMBs), float64(p.IOWriteMBs), float64(p.GPUUtilPct), p.VRAMMB,
				(time.Duration(p.UptimeS) * time.Second).String())
		}
	}
	_ = w.Flush()
	t.printHealth(ids)
	if t.live {
		fmt.Fprintf(t.out, "\n%d hive(s) at %s; Ctrl-C to quit\n", len(ids), time.Now().Format(time.TimeOnly))
	}
}

// printHealth writes each hive's health and GPUs under the table: the
// figures the Queen schedules by.
func (t *table) printHealth(ids []string) {
	w := tabwriter.NewWriter(t.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\nHIVE\tHEALTH\tGPU\tNAME\tUTIL%\tVRAM MiB\tTEMP\tPOWER W\tGPU HEALTH")
	for _, id := range ids {
		ev := t.hives[id]
		health := ev.HiveInfo.HealthStatus.Status
		if r := ev.HiveInfo.HealthStatus.Reason; r != "" {
			health += ": " + safeText(r, 120)
		}
		if len(ev.Node.GPUs) == 0 {
			fmt.Fprintf(w, "%s\t%s\t-\t(no GPU)\t\t\t\t\t\n", id, health)
		}
		for _, g := range ev.Node.GPUs {
			temp, power := "-", "-"
			if g.TempC != nil {
				temp = fmt.Sprintf("%d C", *g.TempC)
			}
			if g.PowerW != nil && g.PowerLimitW != nil {
				power = fmt.Sprintf("%.0f/%.0f", float64(*g.PowerW), float64(*g.PowerLimitW))
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%.0f\t%d/%d\t%s\t%s\t%s\n", id, health, g.Index, safeText(g.Name, 40),
				float64(g.UtilPct), g.VRAMUsedMB, g.VRAMTotalMB, temp, power, g.Health.Status)
			health = ""
		}
	}
	_ = w.Flush()
}

// safeText bounds a string from a hive and drops control characters, so
// a reason or a GPU name cannot move the terminal's cursor.
func safeText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
	return text.Truncate(s, n)
}
