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

// limitListener caps open connections, in all and per client. A
// connection past a cap is answered at once with a JSON 503 and closed,
// so a flood costs one accept and one small write per connection and
// leaves file descriptors for the rest of the hive (the collector reads
// /proc with them).
//
// Slots are kept so that an operator can always act (SECURITY.md,
// "Connection slots"): long-lived streams may hold at most max less a
// reserve (1/16) in all, and each client's streams at most its cap less
// an eighth, so that short requests (/health, /metrics, a job, a stop)
// find a slot when streams are at their share. A client is an IPv4
// address or an IPv6 /64 (one host's usual allocation).
type limitListener struct {
	net.Listener
	max, perIP int
	// maxStreams and streamsPerClient bound the streams in all and per
	// client.
	maxStreams, streamsPerClient int

	// shed counts connections refused, shedStreams streams refused at a
	// client's stream share: the gateway's counters.
	shed, shedStreams *atomic.Uint64
	// tlsCap bounds each connection's TLS handshake (handshake.go), set
	// before Accept runs; handshakesCut counts those cut.
	tlsCap        bool
	handshakesCut *atomic.Uint64

	mu      sync.Mutex
	open    int
	byKey   map[string]int
	streams map[string]int
	nstream int
}

func newLimitListener(ln net.Listener, maxConns, perIP int, shed, shedStreams *atomic.Uint64) *limitListener {
	return &limitListener{Listener: ln, max: maxConns, perIP: perIP, maxStreams: max(1, maxConns-max(maxConns/16, 1)),
		streamsPerClient: max(1, perIP-max(1, perIP/8)), shed: shed, shedStreams: shedStreams,
		byKey: make(map[string]int), streams: make(map[string]int)}
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
		key := clientKey(c.RemoteAddr())
		l.mu.Lock()
		ok := l.open < l.max && l.byKey[key] < l.perIP
		if ok {
			l.open++
			l.byKey[key]++
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
		tc := &trackedConn{Conn: c, l: l, key: key}
		tc.handshaking.Store(l.tlsCap)
		return tc, nil
	}
}

// takeStream makes c a stream's connection if its client has a stream
// slot left; the slot is given back when c closes.
func (l *limitListener) takeStream(c *trackedConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.stream {
		return true
	}
	if l.streams[c.key] >= l.streamsPerClient || l.nstream >= l.maxStreams {
		l.shedStreams.Add(1)
		return false
	}
	l.streams[c.key]++
	l.nstream++
	c.stream = true
	return true
}

func (l *limitListener) release(c *trackedConn) {
	l.mu.Lock()
	l.open--
	if l.byKey[c.key]--; l.byKey[c.key] <= 0 {
		delete(l.byKey, c.key)
	}
	if c.stream {
		l.nstream--
		if l.streams[c.key]--; l.streams[c.key] <= 0 {
			delete(l.streams, c.key)
		}
	}
	l.mu.Unlock()
}

// clientKey is what the per-client caps count by: an IPv4 peer by its
// address, an IPv6 peer by its /64, which one host usually holds whole.
func clientKey(a net.Addr) string {
	var ip net.IP
	if t, ok := a.(*net.TCPAddr); ok {
		ip = t.IP
	} else if host, _, err := net.SplitHostPort(a.String()); err == nil {
		ip = net.ParseIP(host)
	}
	switch {
	case ip == nil:
		return a.String()
	case ip.To4() != nil:
		return ip.To4().String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// trackedConn gives its slot back on Close. Its Write turns net/http's own
// plain-text errors into JSON (plainerrors.go).
type trackedConn struct {
	net.Conn
	l      *limitListener
	key    string // clientKey of the peer
	stream bool   // holds one of its client's stream slots (l.mu)
	once   sync.Once
	// handshaking is set while a TLS handshake runs (handshake.go);
	// handshakeRead counts its bytes, read by the handshake alone.
	handshaking   atomic.Bool
	handshakeRead int
}

// SyscallConn lets the fan-out write to the socket without blocking.
func (c *trackedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.l.release(c) })
	return c.Conn.Close()
}
