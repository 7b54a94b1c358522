package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rbee/hive/bus"
)

// notifier speaks systemd's notify protocol (sd_notify(3)) when the hive
// runs under a Type=notify unit: READY=1 once every module serves,
// WATCHDOG=1 with every telemetry event (so a stalled tick stops them and
// systemd restarts the service after WatchdogSec=), STOPPING=1 when the
// shutdown begins. Without NOTIFY_SOCKET it does nothing.
type notifier struct {
	mu       sync.Mutex // send and close may race at shutdown
	conn     *net.UnixConn
	watchdog time.Duration // WATCHDOG_USEC, 0 when the unit has none
	log      *slog.Logger
}

func newNotifier(lookupEnv func(string) (string, bool), log *slog.Logger) *notifier {
	n := &notifier{log: log}
	sock, ok := lookupEnv("NOTIFY_SOCKET")
	if !ok || sock == "" {
		return n
	}
	if strings.HasPrefix(sock, "@") {
		sock = "\x00" + sock[1:] // the abstract namespace
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		log.Warn("systemd notify socket unusable", "socket", sock, "err", err)
		return n
	}
	n.conn = c
	if v, ok := lookupEnv("WATCHDOG_USEC"); ok {
		pid, hasPID := lookupEnv("WATCHDOG_PID")
		if us, err := strconv.ParseInt(v, 10, 64); err == nil && us > 0 && (!hasPID || pid == strconv.Itoa(os.Getpid())) {
			n.watchdog = time.Duration(us) * time.Microsecond
		}
	}
	return n
}

func (n *notifier) send(state string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return
	}
	if _, err := n.conn.Write([]byte(state)); err != nil {
		n.log.Warn("systemd notify", "state", state, "err", err)
	}
}

// watch sends WATCHDOG=1 for every telemetry event of hiveID until ctx
// ends: the watchdog proves the tick, not only that the process runs.
func (n *notifier) watch(ctx context.Context, b *bus.Bus, hiveID string) error {
	n.mu.Lock()
	off := n.conn == nil || n.watchdog == 0
	n.mu.Unlock()
	if off {
		return nil
	}
	nc, err := b.Connect("systemd")
	if err != nil {
		return err
	}
	sub, err := bus.SubscribeTelemetry(nc, hiveID, func([]byte) { n.send("WATCHDOG=1") })
	if err != nil {
		nc.Close()
		return err
	}
	go func() {
		<-ctx.Done()
		_ = sub.Unsubscribe()
		nc.Close()
	}()
	return nil
}

func (n *notifier) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil {
		_ = n.conn.Close()
		n.conn = nil
	}
}
