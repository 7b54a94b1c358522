package main

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Under a Type=notify unit: READY=1 once it serves, WATCHDOG=1 from the
// tick, STOPPING=1 when the stop begins; the test is systemd, listening
// on its own NOTIFY_SOCKET.
func TestSystemdNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ln.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	h := startHiveEnv(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=30000000"}, "--telemetry-interval", "200ms")
	want := func(state string, n int) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for seen := 0; seen < n; {
			select {
			case s := <-got:
				if strings.Contains(s, state) {
					seen++
				}
			case <-deadline:
				t.Fatalf("no %s from the hive (%d of %d)", state, seen, n)
			}
		}
	}
	want("READY=1", 1)
	want("WATCHDOG=1", 3)
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	want("STOPPING=1", 1)
	<-h.exited
}
