package gateway

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/rbee/hive/internal/text"
)

// access is what a route needs from its caller.
type access int

const (
	// public routes answer anyone: GET /health.
	public access = iota
	// read routes (streams, capabilities, metrics) need the token or the
	// read token when one is set, unless Access is AccessOpenReads.
	read
	// control routes change state (jobs, cancel, shutdown, a new Queen):
	// the token when one is set; without one, loopback only, unless
	// Access is AccessOpen. Never from another site's page.
	control
)

// denial is why a request may not proceed; zero means it may.
type denial struct {
	status int
	msg    string
}

// check decides whether c may use a route of level a. It writes nothing.
func (g *Gateway) check(c *gin.Context, a access) denial {
	if a == public {
		return denial{}
	}
	certOK := g.clientCertOK(c.Request)
	if a == control {
		if d := crossSite(c.Request); d.status != 0 {
			return d
		}
		if g.token == nil && !certOK && !g.ownHost(c.Request.Host) {
			return denial{http.StatusForbidden, "Host " + strconv.Quote(text.Truncate(c.Request.Host, 80)) +
				" is not this hive's name: without an API token, control requests must address an IP, localhost or the hive's host name (DNS rebinding)"}
		}
	}
	if certOK {
		return denial{} // a verified client certificate authorises as the token does
	}
	if a == read {
		// Reads need a token when one of the two is set: the control
		// token or the read token.
		if g.cfg.Access == AccessOpenReads || (g.token == nil && g.readToken == nil) || g.readBearerOK(c.Request) {
			return denial{}
		}
		return denial{http.StatusUnauthorized, "missing or wrong bearer token: send Authorization: Bearer <token> (the API token or the read token)"}
	}
	if g.token != nil {
		if !g.bearerOK(c.Request) {
			return denial{http.StatusUnauthorized, "missing or wrong bearer token: send Authorization: Bearer <token> (the API token: the read token reads only)"}
		}
		return denial{}
	}
	if g.cfg.Access == AccessOpen {
		return denial{}
	}
	if !fromLoopback(c.Request) {
		return denial{http.StatusForbidden, "remote control is off: this hive has no API token (set HIVE_API_TOKEN or --api-token-file); only loopback clients may change state"}
	}
	return denial{}
}

// guard is check as middleware: a denied request is answered with JSON
// and goes no further.
func (g *Gateway) guard(a access) gin.HandlerFunc {
	return func(c *gin.Context) {
		if d := g.check(c, a); d.status != 0 {
			g.deny(c, d)
		}
	}
}

func (g *Gateway) deny(c *gin.Context, d denial) {
	g.denied.Add(1)
	if d.status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="hive"`)
	}
	abortJSON(c, d.status, d.msg)
}

// SetToken replaces the API token while the gateway runs (a reload):
// requests from then on need the new one, and streams opened with the old
// one end. A hive started without a token
// keeps its access mode until restarted: adding or removing the token
// changes what loopback and remote clients may do.
func (g *Gateway) SetToken(tok string) error {
	switch {
	case g.token == nil && tok != "":
		return errors.New("gateway: an API token cannot be added to a running hive started without one: restart it")
	case g.token != nil && tok == "":
		return errors.New("gateway: the API token cannot be removed from a running hive: restart it")
	case g.token == nil:
		return nil
	case len(tok) < MinTokenLen:
		return fmt.Errorf("gateway: API token shorter than %d characters", MinTokenLen)
	}
	sum := sha256.Sum256([]byte(tok))
	g.tokenSum.Store(&sum)
	g.streams.revoke(g.readsWith)
	return nil
}

// fromLoopback reports whether the TCP peer is a loopback address: the
// socket's, never a forwarded header. check has already refused a Host
// that is not the hive's (ownHost), which stops DNS rebinding, where a
// page from evil.example resolves its own name to 127.0.0.1.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ownHost reports whether a Host header names this hive: an IP literal
// (which no DNS answer can rebind), localhost or a name under .localhost,
// or one of Config.Hosts.
func (g *Gateway) ownHost(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") || net.ParseIP(strings.Trim(h, "[]")) != nil {
		return true
	}
	for _, n := range g.cfg.Hosts {
		if n != "" && strings.EqualFold(strings.TrimSuffix(n, "."), h) {
			return true
		}
	}
	return false
}

// crossSite refuses a request a browser sent on behalf of another site's
// page: Sec-Fetch-Site says so, or Origin names another host than the one
// addressed. Clients that are not browsers send neither header.
func crossSite(r *http.Request) denial {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return denial{http.StatusForbidden, "cross-site request refused (Sec-Fetch-Site: " + r.Header.Get("Sec-Fetch-Site") + ")"}
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return denial{}
	}
	u, err := url.Parse(origin)
	if err != nil || origin == "null" || !strings.EqualFold(u.Host, r.Host) {
		return denial{http.StatusForbidden, "cross-origin request refused (Origin: " + text.Truncate(origin, 80) + ")"}
	}
	return denial{}
}
