// Package client reads a hive's telemetry: one hive's SSE stream with
// reconnect and resume, or hive.telemetry over NATS from a hive or a hub.
// Every reader delivers the same Event, whose Telemetry is the wire type
// the Queen decodes (package bus/wire), so a program sees what the Queen
// sees.
package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rbee/hive/bus/wire"
)

// Event is one telemetry event from a stream.
type Event struct {
	// ID is the event's SSE id: it grows by one per event and across the
	// hive's restarts.
	ID        uint64
	Telemetry wire.TelemetryEvent
}

// Stream follows one hive's telemetry stream.
type Stream struct {
	// URL is the hive's base URL, e.g. http://gpu-01:7835.
	URL string
	// Token is the hive's API token, if it has one.
	Token string
	// HTTPClient makes the requests; nil is a client without a timeout
	// (the stream is long-lived) that follows no redirect.
	HTTPClient *http.Client
	// MinBackoff and MaxBackoff bound the wait before a reconnect; it
	// doubles from the hive's retry hint (or MinBackoff) up to MaxBackoff,
	// with jitter, and starts again after a connection that delivered.
	MinBackoff, MaxBackoff time.Duration
	// OnNote, if set, gets the hive's comments: a resume point it could
	// not honour ("events were lost"), keep-alives excluded.
	OnNote func(string)
	// OnConnect, if set, is called with each connection's status (nil for
	// a successful connect) before any of its events.
	OnConnect func(error)

	lastID uint64
}

// ErrUnauthorized is returned when the hive refuses the token, or wants
// one and none was sent (ErrTokenNeeded, which wraps it).
var ErrUnauthorized = errors.New("client: the hive refused the token (401)")

// ErrTokenNeeded is a 401 to a request that sent no token: the hive has
// one set. errors.Is(ErrTokenNeeded, ErrUnauthorized) holds.
var ErrTokenNeeded error = tokenNeeded{}

type tokenNeeded struct{}

func (tokenNeeded) Error() string {
	return "client: the hive needs a token (401): set HIVE_API_TOKEN or pass one (hive watch --token-file)"
}
func (tokenNeeded) Is(target error) bool { return target == ErrUnauthorized }

// Run delivers every event to fn until ctx ends, reconnecting and resuming
// with Last-Event-ID after a failure. It returns ctx's error, or
// ErrUnauthorized, which no retry can fix.
func (s *Stream) Run(ctx context.Context, fn func(Event)) error {
	minB, maxB := s.MinBackoff, s.MaxBackoff
	if minB <= 0 {
		minB = 500 * time.Millisecond
	}
	if maxB < minB {
		maxB = max(30*time.Second, minB)
	}
	wait := minB
	for {
		hint, delivered, err := s.once(ctx, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrUnauthorized) {
			return err
		}
		if s.OnConnect != nil && err != nil {
			s.OnConnect(err)
		}
		if delivered {
			wait = max(hint, minB)
		}
		d := time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
		wait = min(wait*2, maxB)
	}
}

// LastID is the id of the last event delivered, 0 before the first.
func (s *Stream) LastID() uint64 { return s.lastID }

// once runs one connection. hint is the hive's retry hint.
func (s *Stream) once(ctx context.Context, fn func(Event)) (hint time.Duration, delivered bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(s.URL, "/")+"/v1/heartbeats/stream", nil)
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if s.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	if s.lastID > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(s.lastID, 10))
	}
	hc := s.HTTPClient
	if hc == nil {
		hc = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized && s.Token == "":
		return 0, false, ErrTokenNeeded
	case resp.StatusCode == http.StatusUnauthorized:
		return 0, false, ErrUnauthorized
	case resp.StatusCode != http.StatusOK:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, false, fmt.Errorf("client: %s: %d %s", req.URL, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if s.OnConnect != nil {
		s.OnConnect(nil)
	}
	err = readEvents(resp.Body, func(f field) {
		switch f.name {
		case "retry":
			if ms, err := strconv.Atoi(f.value); err == nil && ms >= 0 {
				hint = time.Duration(ms) * time.Millisecond
			}
		case ":":
			if s.OnNote != nil && f.value != "keep-alive" {
				s.OnNote(f.value)
			}
		}
	}, func(id, data string) {
		var ev Event
		if json.Unmarshal([]byte(data), &ev.Telemetry) != nil {
			return // not telemetry: nothing this client knows
		}
		ev.ID, _ = strconv.ParseUint(id, 10, 64)
		if ev.ID > 0 {
			s.lastID = ev.ID
		}
		delivered = true
		fn(ev)
	})
	return hint, delivered, err
}

// field is one "name: value" line of an event, or a comment (name ":").
type field struct{ name, value string }

// readEvents parses an SSE stream as the spec says: lines end at CRLF, LF
// or CR; an empty line dispatches the event if it has data.
func readEvents(r io.Reader, onField func(field), onEvent func(id, data string)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var id string
	var data []string
	hasData := false
	for {
		line, err := readLine(br)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF // the hive never ends a stream on its own
			}
			return err
		}
		if line == "" {
			if hasData {
				onEvent(id, strings.Join(data, "\n"))
			}
			data, hasData = data[:0], false
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "":
			onField(field{":", value})
		case "data":
			data, hasData = append(data, value), true
		case "id":
			id = value
		default:
			onField(field{name, value})
		}
	}
}

// readLine reads one line ended by CRLF, LF or CR.
func readLine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		c, err := br.ReadByte()
		if err != nil {
			return b.String(), err
		}
		switch c {
		case '\n':
			return b.String(), nil
		case '\r':
			if next, err := br.Peek(1); err == nil && next[0] == '\n' {
				_, _ = br.ReadByte()
			}
			return b.String(), nil
		}
		if b.Len() > 16<<20 {
			return "", errors.New("client: line longer than 16 MiB")
		}
		b.WriteByte(c)
	}
}
