package gateway

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// sseConn is the one writer of the hive's event streams, telemetry (under
// the fan-out, stream.go) and job narration (jobstream.go) alike: a
// connection taken over from net/http once the request is accepted, so
// that no server timeout cuts a long stream and the fan-out can write its
// socket without blocking. It writes the response head, frames (HTTP/1.1
// chunks, or the bare event for HTTP/1.0, where the stream ends with the
// connection) and the end.
type sseConn struct {
	conn    net.Conn
	chunked bool
	timeout time.Duration // bounds each blocking write
}

// hijackSSE takes c's connection over. On failure it has answered c.
func hijackSSE(c *gin.Context, timeout time.Duration) (sseConn, bool) {
	conn, _, err := c.Writer.Hijack()
	if err != nil {
		abortJSON(c, http.StatusInternalServerError, "the event stream needs an HTTP/1.x connection: "+err.Error())
		return sseConn{}, false
	}
	// From here the connection is the stream's: net/http no longer times,
	// buffers or closes it. Whatever the client had sent beyond its
	// request is of no use to an event stream and is dropped.
	return sseConn{conn: conn, chunked: c.Request.ProtoAtLeast(1, 1), timeout: timeout}, true
}

// head is the response head: status, the headers set so far (CORS and
// the like) and the event-stream ones, then lead (a retry hint, notes)
// as the start of the first event's block, if any.
func (s sseConn) head(set http.Header, lead string) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	h := set.Clone()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	if s.chunked {
		h.Set("Transfer-Encoding", "chunked")
	}
	// The connection is the stream's to its end and never serves another
	// request: a client must not put it back in its pool after the last
	// chunk. (On HTTP/1.0 the close is also the end of the stream.)
	h.Set("Connection", "close")
	_ = h.Write(&b)
	b.WriteString("\r\n")
	if lead != "" {
		b.Write(s.bytes(newFrame(0, []byte(lead))))
	}
	return b.Bytes()
}

// bytes is what f is on this connection.
func (s sseConn) bytes(f frame) []byte {
	if s.chunked {
		return f.wire
	}
	return f.data
}

// write sends b, blocking up to the write timeout.
func (s sseConn) write(b []byte) error {
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil {
		return err
	}
	_, err := s.conn.Write(b)
	return err
}

// writeBuffers sends bufs in order without joining them, blocking up to
// the write timeout in all.
func (s sseConn) writeBuffers(bufs net.Buffers) error {
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.timeout)); err != nil {
		return err
	}
	_, err := bufs.WriteTo(s.conn)
	return err
}

// lastChunk ends a chunked response.
var lastChunk = []byte("0\r\n\r\n")

// keepAliveFrame is the comment a quiet stream gets every KeepAlive.
var keepAliveFrame = newFrame(0, []byte(": keep-alive\n\n"))

// frame is one SSE event, rendered once for every client.
type frame struct {
	seq  uint64
	wire []byte // the event as an HTTP/1.1 chunk
	data []byte // the event alone (HTTP/1.0), a window of wire
}

// newFrame wraps data as one HTTP/1.1 chunk, keeping data itself for
// clients that speak HTTP/1.0.
func newFrame(seq uint64, data []byte) frame {
	n := strconv.FormatInt(int64(len(data)), 16)
	w := make([]byte, 0, len(n)+len(data)+4)
	w = append(w, n...)
	w = append(w, "\r\n"...)
	w = append(w, data...)
	w = append(w, "\r\n"...)
	return frame{seq: seq, wire: w, data: w[len(n)+2 : len(w)-2]}
}

// writeData appends payload as SSE data: lines. SSE ends a line at CR, LF
// or CRLF, so all three split here: a payload can never end its event
// early or start a forged one, whatever bytes it carries.
func writeData(b *bytes.Buffer, payload []byte) {
	for {
		i := bytes.IndexAny(payload, "\r\n")
		b.WriteString("data: ")
		if i < 0 {
			b.Write(payload)
			b.WriteByte('\n')
			return
		}
		b.Write(payload[:i])
		b.WriteByte('\n')
		if payload[i] == '\r' && i+1 < len(payload) && payload[i+1] == '\n' {
			i++
		}
		payload = payload[i+1:]
	}
}
