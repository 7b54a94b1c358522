package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
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

	mu    sync.Mutex
	open  int
	byIP  map[string]int
	shed  atomic.Uint64 // connections refused
	total atomic.Uint64 // connections accepted and kept
}

func newLimitListener(ln net.Listener, max, perIP int) *limitListener {
	return &limitListener{Listener: ln, max: max, perIP: perIP, byIP: make(map[string]int)}
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
		l.total.Add(1)
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

func (l *limitListener) openConns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
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

// trackedConn gives its slot back on Close, and turns the plain-text error
// answers net/http writes itself (431, 400, 501: before any handler runs)
// into the JSON every other error has.
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

// plainErrHeaders is what net/http puts between the status line and the
// body of the errors it writes on its own (net/http server.go).
var plainErrHeaders = []byte("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")

func (c *trackedConn) Write(b []byte) (int, error) {
	if j, ok := jsonServerError(b); ok {
		if _, err := c.Conn.Write(j); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// jsonServerError rewrites one of net/http's own error answers, written in
// one piece as "HTTP/1.1 <code> <text>" + plainErrHeaders + <text>, as
// JSON. Anything else is left alone.
func jsonServerError(b []byte) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(b, []byte("HTTP/1.1 "))
	if !ok || len(rest) < 4 || rest[0] < '4' || rest[0] > '5' {
		return nil, false
	}
	status, body, ok := bytes.Cut(rest, plainErrHeaders)
	if !ok || bytes.IndexByte(status, '\n') >= 0 {
		return nil, false
	}
	code, err := strconv.Atoi(string(status[:3]))
	if err != nil || http.StatusText(code) == "" {
		return nil, false
	}
	j, _ := json.Marshal(apiError{Error: string(body)})
	out := []byte("HTTP/1.1 " + string(status) + "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(j)) + "\r\n\r\n")
	return append(out, j...), true
}
