package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rbee/hive/bus"
	"github.com/rbee/hive/bus/wire"
	"github.com/rbee/hive/internal/wait"
)

// hiveCheck is a self-test that narrates every step: the bus, the age of
// the collector's last tick, capabilities, and disk space.
func (m *Jobs) hiveCheck(ctx context.Context, n *narrator) error {
	n.fn = "rbee_hive::hive_check::handle_hive_check"
	n.say("hive_check_start", "🔍 Hive self-check of "+m.cfg.HiveID)
	failed := 0
	step := func(action string, f func(context.Context) (string, error)) bool {
		if !wait.Sleep(ctx, m.cfg.CheckPause) {
			return false
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		msg, err := f(sctx)
		if ctx.Err() != nil {
			return false
		}
		if err != nil {
			failed++
			n.sayf(action, "❌ %v", err)
		} else {
			n.sayf(action, "✅ %s", msg)
		}
		return true
	}
	steps := []struct {
		action string
		f      func(context.Context) (string, error)
	}{
		{"hive_check_bus", m.checkBus},
		{"hive_check_tick", m.checkTick},
		{"hive_check_caps", m.checkCapabilities},
		{"hive_check_disk", func(context.Context) (string, error) { return diskFree("worker dir", m.cfg.WorkerDir) }},
		{"hive_check_disk", func(context.Context) (string, error) { return diskFree("model dir", m.cfg.ModelDir) }},
		{"hive_check_disk", func(context.Context) (string, error) { return diskFree("worker log dir", m.cfg.LogDir) }},
	}
	if p := m.cfg.statePath(); p != "" {
		steps = append(steps, struct {
			action string
			f      func(context.Context) (string, error)
		}{"hive_check_disk", func(context.Context) (string, error) { return diskFree("state dir", filepath.Dir(p)) }})
	}
	for _, s := range steps {
		if !step(s.action, s.f) {
			return ctx.Err()
		}
	}
	if failed > 0 {
		return fmt.Errorf("hive check: %d of %d checks failed", failed, len(steps))
	}
	n.say("hive_check_complete", "✅ All checks passed")
	return nil
}

func (m *Jobs) checkBus(ctx context.Context) (string, error) {
	start := time.Now()
	if err := m.nc.FlushWithContext(ctx); err != nil {
		return "", fmt.Errorf("bus round trip: %w", err)
	}
	return fmt.Sprintf("bus round trip %v", time.Since(start).Round(time.Microsecond)), nil
}

// nextTelemetry waits for the next telemetry event of this hive, until
// ctx ends.
func (m *Jobs) nextTelemetry(ctx context.Context) ([]byte, error) {
	ch := make(chan []byte, 1)
	sub, err := bus.SubscribeTelemetry(m.nc, m.cfg.HiveID, func(data []byte) {
		select {
		case ch <- data:
		default:
		}
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case data := <-ch:
		return data, nil
	}
}

// checkTick waits for the next telemetry event and reports its age.
func (m *Jobs) checkTick(ctx context.Context) (string, error) {
	data, err := m.nextTelemetry(ctx)
	if ctx.Err() != nil {
		return "", fmt.Errorf("no collector tick: %w", err)
	}
	if err != nil {
		return "", err
	}
	var ev wire.TelemetryEvent
	if err := json.Unmarshal(data, &ev); err != nil {
		return "", fmt.Errorf("undecodable telemetry: %w", err)
	}
	ts, err := time.Parse(time.RFC3339Nano, ev.Timestamp)
	if err != nil {
		return "", fmt.Errorf("telemetry timestamp %q: %w", ev.Timestamp, err)
	}
	return fmt.Sprintf("collector tick %v old, %d worker(s)", time.Since(ts).Round(time.Millisecond), len(ev.Workers)), nil
}

func (m *Jobs) checkCapabilities(ctx context.Context) (string, error) {
	caps, err := bus.RequestCapabilities(ctx, m.nc)
	if err != nil {
		return "", fmt.Errorf("capabilities: %w", err)
	}
	if len(caps.Devices) == 0 {
		return "", errors.New("capabilities: no devices in the reply")
	}
	return fmt.Sprintf("%d device(s): %s", len(caps.Devices), caps.Devices[len(caps.Devices)-1].Name), nil
}

// diskFree reports the free space of dir, or of its closest existing
// parent (the directory may not exist until the first spawn).
func diskFree(what, dir string) (string, error) {
	p := dir
	var st syscall.Statfs_t
	for {
		if err := syscall.Statfs(p, &st); err == nil {
			break
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", fmt.Errorf("%s %s: no such file system", what, dir)
		}
		p = parent
	}
	free, total := st.Bavail*uint64(st.Bsize), st.Blocks*uint64(st.Bsize)
	msg := fmt.Sprintf("%s %s: %.1f GiB free of %.1f GiB", what, dir, float64(free)/(1<<30), float64(total)/(1<<30))
	if nearlyFull(free, total) {
		return "", fmt.Errorf("%s: nearly full (a worker's log, a model or the state file may not be written)", msg)
	}
	return msg, nil
}

// nearlyFull is under 256 MiB, or under 2 % of the file system, free.
func nearlyFull(free, total uint64) bool {
	return free < 256<<20 || (total > 0 && free*50 < total)
}
