package gateway

import (
	"crypto/tls"
	"errors"
)

// maxHandshakeBytes bounds what a client may send before its TLS handshake
// is done. A ClientHello and a client certificate chain of a few
// certificates fit many times over; a 200 KB chain is cut before
// crypto/tls parses it: parsing its 400 certificates cost ~20 ms of CPU
// per handshake (control: ~1 ms), and the cost is in the parsing, which
// no verification setting avoids.
const maxHandshakeBytes = 32 << 10

var errHandshakeTooLarge = errors.New("gateway: TLS handshake over 32 KiB: connection closed")

// Read counts what the client sends while its handshake runs (see
// capHandshakes) and fails past maxHandshakeBytes.
func (c *trackedConn) Read(b []byte) (int, error) {
	if !c.handshaking.Load() {
		return c.Conn.Read(b)
	}
	left := maxHandshakeBytes - c.handshakeRead
	if left <= 0 {
		if c.l.handshakesCut != nil {
			c.l.handshakesCut.Add(1)
		}
		return 0, errHandshakeTooLarge
	}
	if len(b) > left {
		b = b[:left]
	}
	n, err := c.Conn.Read(b)
	c.handshakeRead += n
	return n, err
}

// capHandshakes makes cfg bound each connection's handshake: the listener
// starts every connection handshaking (limitListener.tlsCap), and the
// handshake's VerifyConnection, which crypto/tls calls once it has the
// client's certificates, lifts the bound. The ClientHelloInfo carries the
// connection the listener made, hence a config per handshake.
func capHandshakes(cfg *tls.Config) *tls.Config {
	base := cfg.Clone()
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		tc, ok := h.Conn.(*trackedConn)
		if !ok {
			return nil, nil
		}
		c := base.Clone()
		c.VerifyConnection = func(tls.ConnectionState) error {
			tc.handshaking.Store(false)
			return nil
		}
		return c, nil
	}
	return cfg
}
