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
// "Connection slots"):
//   - a client is an IPv4 address, an IPv6 /64 (one host's usual
//     allocation), or the loopback as a whole: 127.0.0.2 to 127.0.0.9 are
//     one client, not eight;
//   - the last reserve slots of max are the loopback's: remote clients,
//     however many, leave them free;
//   - a client's long-lived streams may hold perIP less its control share,
//     so that its own short requests (/health, /metrics, a job, a stop)
//     still find a slot when its streams are at their cap.
type limitListener struct {
	net.Listener
	max, perIP int
	// reserve is the loopback's share of max; streamsPerClient the most
	// streams one client may hold.
	reserve, streamsPerClient int

	// shed counts connections refused, shedStreams streams refused at a
	// client's stream share: the gateway's counters.
	shed, shedStreams *atomic.Uint64

	mu      sync.Mutex
	open    int
	byKey   map[string]int
	streams map[string]int
}

func newLimitListener(ln net.Listener, maxConns, perIP int, shed, shedStreams *atomic.Uint64) *limitListener {
	return &limitListener{Listener: ln, max: maxConns, perIP: perIP, reserve: min(maxConns/2, max(maxConns/16, 1)),
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
		limit := l.max - l.reserve
		if key == loopbackClient {
			limit = l.max
		}
		ok := l.open < limit && l.byKey[key] < l.perIP
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
		return &trackedConn{Conn: c, l: l, key: key}, nil
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
	if l.streams[c.key] >= l.streamsPerClient {
		l.shedStreams.Add(1)
		return false
	}
	l.streams[c.key]++
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
		if l.streams[c.key]--; l.streams[c.key] <= 0 {
			delete(l.streams, c.key)
		}
	}
	l.mu.Unlock()
}

// loopbackClient is the key of every loopback peer.
const loopbackClient = "loopback"

// clientKey is what the per-client caps count by: the loopback as one
// client, an IPv6 peer by its /64, an IPv4 peer by its address.
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
	case ip.IsLoopback():
		return loopbackClient
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
