package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
)

// tokenHash is a bearer token as the gateway keeps it: its SHA-256.
type tokenHash = [sha256.Size]byte

// presented is the hash of the request's bearer token, ok false without
// one.
func presented(r *http.Request) (tokenHash, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return tokenHash{}, false
	}
	return sha256.Sum256([]byte(strings.TrimSpace(tok))), true
}

// matches compares in constant time (hashing first makes the time
// independent of the length too).
func matches(sum tokenHash, want *tokenHash) bool {
	return want != nil && subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}

// bearerOK reports whether the request carries the control token.
func (g *Gateway) bearerOK(r *http.Request) bool {
	sum, ok := presented(r)
	return ok && matches(sum, g.tokenSum.Load())
}

// readBearerOK reports whether the request carries a token that allows
// reads: the control token or the read token.
func (g *Gateway) readBearerOK(r *http.Request) bool {
	sum, ok := presented(r)
	return ok && g.readsWith(sum)
}

func (g *Gateway) readsWith(sum tokenHash) bool {
	return matches(sum, g.tokenSum.Load()) || matches(sum, g.readSum.Load())
}

// SetReadToken replaces the read token while the gateway runs (a
// reload), and ends the streams opened with a token no longer valid. Like
// the API token, it can be changed but not added or removed without a
// restart: that would change who may read.
func (g *Gateway) SetReadToken(tok string) error {
	switch {
	case g.readToken == nil && tok != "":
		return errors.New("gateway: a read token cannot be added to a running hive started without one: restart it")
	case g.readToken != nil && tok == "":
		return errors.New("gateway: the read token cannot be removed from a running hive: restart it")
	case g.readToken == nil:
		return nil
	case len(tok) < MinTokenLen:
		return fmt.Errorf("gateway: read token shorter than %d characters", MinTokenLen)
	}
	sum := sha256.Sum256([]byte(tok))
	g.readSum.Store(&sum)
	g.streams.revoke(g.readsWith)
	return nil
}

// streamCreds are the open streams (telemetry and job narration) that a
// bearer token let in, with that token's hash: a rotated token ends
// them, so that a credential taken away stops reading at once, not when
// its streams happen to end.
type streamCreds struct {
	mu      sync.Mutex
	m       map[net.Conn]tokenHash
	revoked uint64
}

// hold records conn as let in by r's bearer token, if it had one; the
// returned func forgets it (call it when the stream ends).
func (s *streamCreds) hold(r *http.Request, conn net.Conn) func() {
	sum, ok := presented(r)
	if !ok {
		return func() {}
	}
	s.mu.Lock()
	if s.m == nil {
		s.m = map[net.Conn]tokenHash{}
	}
	s.m[conn] = sum
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.m, conn)
		s.mu.Unlock()
	}
}

// revoke closes every held stream whose token valid no longer accepts.
func (s *streamCreds) revoke(valid func(tokenHash) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for conn, sum := range s.m {
		if !valid(sum) {
			_ = conn.Close()
			delete(s.m, conn)
			s.revoked++
		}
	}
}

func (s *streamCreds) revokedCount() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revoked
}
