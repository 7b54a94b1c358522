package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"syscall"
	"time"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
)

// follow is one Queen's loop: discover, then (heartbeat API) push until the
// Queen restarts, and discover again.
func (d *Discovery) follow(ctx context.Context, queen string) {
	log := d.log.With("queen", queen, "api", d.cfg.API)
	for {
		d.queenState.Store(queenReaching)
		if !d.discover(ctx, queen) {
			return
		}
		d.queenState.Store(queenConnected)
		if d.cfg.API == APIReady {
			log.Info("Queen acknowledged; it subscribes to our SSE stream")
			return
		}
		log.Info("Queen discovered; pushing telemetry every tick")
		if !d.push(ctx, queen) {
			return
		}
		log.Warn("Queen restart detected; rediscovering with capabilities")
	}
}

// discover makes attempts after each of Delays, then every Retry, until one
// gets a 2xx. It returns false when ctx ends or Retry is 0 and every attempt
// failed.
func (d *Discovery) discover(ctx context.Context, queen string) bool {
	for attempt := 1; ; attempt++ {
		var wait time.Duration
		switch {
		case attempt <= len(d.cfg.Delays):
			wait = d.cfg.Delays[attempt-1]
		case d.cfg.Retry == 0:
			d.log.Warn("Queen not reached; waiting for it to discover us via /capabilities", "queen", queen, "attempts", attempt-1)
			return false
		default:
			wait = d.cfg.Retry
		}
		if !d.cfg.Sleep(ctx, d.jitter(wait)) {
			return false
		}
		err := d.attempt(ctx, queen)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		d.pushFails.Add(1)
		d.noteFailure(queen, attempt, err)
	}
}

// noteFailure logs a failed discovery attempt. The Queen a hive looks
// for when none was configured (the default, on this machine) is said
// once, with how to run standalone; its later failures are debug lines,
// not one line a minute for a Queen that was never meant to be there.
func (d *Discovery) noteFailure(queen string, attempt int, err error) {
	if !d.cfg.DefaultQueen {
		d.log.Info("discovery attempt failed", "queen", queen, "attempt", attempt, "err", err)
		return
	}
	if attempt == 1 {
		d.log.Info("no Queen at the default URL: this hive keeps looking for one there, quietly; join another with --queen-url, or run standalone with --queen-url \"\" (HIVE_QUEEN_URL=\"\")",
			"queen", queen, "err", err)
		return
	}
	d.log.Debug("discovery attempt failed", "queen", queen, "attempt", attempt, "err", err)
}

// attempt sends one discovery request.
func (d *Discovery) attempt(ctx context.Context, queen string) error {
	if d.cfg.API == APIReady {
		body := wire.HiveReady{
			HiveID:  d.cfg.Hive.ID,
			HiveURL: HiveURL(queen, d.cfg.AdvertiseURL, d.cfg.AdvertiseHost, int(d.cfg.Hive.Port), d.cfg.HiveTLS),
		}
		_, err := d.post(ctx, wire.JoinURL(queen, "/v1/hive/ready"), body)
		return err
	}
	caps, err := d.capabilities(ctx)
	if err != nil {
		return err
	}
	ev := d.snapshot()
	body := pushBody{Hive: ev.HiveInfo, Timestamp: wire.PushTimestamp(time.Now()), Workers: ev.Workers, Node: ev.Node, Capabilities: caps}
	_, err = d.post(ctx, wire.JoinURL(queen, "/v1/hive-heartbeat"), body)
	return err
}

func (d *Discovery) capabilities(ctx context.Context) ([]wire.Device, error) {
	rctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	caps, err := bus.RequestCapabilities(rctx, d.nc)
	if err != nil {
		return nil, fmt.Errorf("capabilities: %w", err)
	}
	if len(caps.Devices) == 0 {
		return nil, errors.New("capabilities: no devices in the reply")
	}
	return caps.Devices, nil
}

// push POSTs every telemetry event as a HiveHeartbeat. It returns true
// when the Queen looks restarted (404, 400 or connection refused), false
// when ctx ends.
func (d *Discovery) push(ctx context.Context, queen string) bool {
	url := wire.JoinURL(queen, "/v1/hive-heartbeat")
	fl := failureLog{log: d.log.With("queen", queen)}
	replaced := d.replaced.Load()
	for {
		var ev event
		select {
		case <-ctx.Done():
			return false
		case ev = <-d.latest:
		}
		if n := d.replaced.Load(); n != replaced {
			d.log.Debug("Queen slower than the tick: pushing the newest event only", "skipped", n-replaced)
			replaced = n
		}
		ts := wire.PushTimestamp(time.Now())
		if t, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err == nil {
			ts = wire.PushTimestamp(t) // the instant of the sample, in the push's "Z" form
		}
		status, err := d.post(ctx, url, pushBody{Hive: ev.HiveInfo, Timestamp: ts, Workers: ev.Workers, Node: ev.Node})
		if err == nil {
			d.queenState.Store(queenConnected)
			fl.ok()
			continue
		}
		if ctx.Err() != nil {
			return false
		}
		d.queenState.Store(queenReaching)
		d.pushFails.Add(1)
		if status == http.StatusNotFound || status == http.StatusBadRequest || errors.Is(err, syscall.ECONNREFUSED) {
			d.log.Info("push rejected", "queen", queen, "err", err)
			return true
		}
		fl.failed(err)
	}
}

// post sends v as JSON and returns the status; a non-2xx status is an
// error. A json.Marshaler's bytes are sent as it wrote them (json.Marshal
// would compact them again: the splice's point is not to).
func (d *Discovery) post(ctx context.Context, url string, v any) (int, error) {
	var body []byte
	var err error
	if m, ok := v.(json.Marshaler); ok {
		body, err = m.MarshalJSON()
	} else {
		body, err = json.Marshal(v)
	}
	if err != nil {
		return 0, fmt.Errorf("encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("POST %s: status %d: %.200s", url, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return resp.StatusCode, nil
}

// jitter spreads d by +-Jitter so that many hives restarted together do
// not call the Queen in lockstep.
func (d *Discovery) jitter(w time.Duration) time.Duration {
	if w <= 0 || d.cfg.Jitter == 0 {
		return w
	}
	f := 1 + d.cfg.Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(w) * f)
}
