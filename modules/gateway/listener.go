package gateway

import (
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// limitListener caps open connections, in all and per peer address. A
// connection past a cap is answered at once with a JSON 503 and closed,
// so a flood costs one accept and one small write per connection and
// leaves file descriptors for the rest of the hive (the collector reads
// /proc with them).
type limitListener struct {
	net.Listener
	max, perIP int

	shed *atomic.Uint64 // connections refused, the gateway's counter

	mu   sync.Mutex
	open int
	byIP map[string]int
}

func newLimitListener(ln net.Listener, max, perIP int, shed *atomic.Uint64) *limitListener {
	return &limitListener{Listener: ln, max: max, perIP: perIP, shed: shed, byIP: make(map[string]int)}
}

// rejectBody is the whole answer to a connection past a cap.
var rejectBody = func() []byte {
	b, _ := json.Marshal(apiError{Error: "too many connections; retry later"})
	return append([]byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: "+
		strconv.Itoa(len(b))+"\r\n\r\n"), b...)
}()

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := peerIP(c.RemoteAddr())
		l.mu.Lock()
		ok := l.open < l.max && l.byIP[ip] < l.perIP
		if ok {
			l.open++
			l.byIP[ip]++
		}
		l.mu.Unlock()
		if !ok {
			l.shed.Add(1)
			// The answer fits any socket buffer; the deadline only guards
			// against a peer that has already gone.
			_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			_, _ = c.Write(rejectBody)
			_ = c.Close()
			continue
		}
		return &trackedConn{Conn: c, l: l, ip: ip}, nil
	}
}

func (l *limitListener) release(ip string) {
	l.mu.Lock()
	l.open--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
	l.mu.Unlock()
}

func peerIP(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// trackedConn gives its slot back on Close. Its Write turns net/http's own
// plain-text errors into JSON (plainerrors.go).
type trackedConn struct {
	net.Conn
	l    *limitListener
	ip   string
	once sync.Once
}

// SyscallConn lets the fan-out write to the socket without blocking.
func (c *trackedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.l.release(c.ip) })
	return c.Conn.Close()
}
