package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
)

// net/http writes some error answers itself (431, 400, 501: before any
// handler runs), as plain text. Every other error of the hive is JSON, so
// the connection rewrites them on the way out.

// plainErrHeaders is what net/http puts between the status line and the
// body of the errors it writes on its own (net/http server.go).
var plainErrHeaders = []byte("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")

// httpToHTTPS is what net/http answers a plain HTTP request on a TLS
// port, straight to the socket.
const httpToHTTPS = "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"

var httpToHTTPSJSON = func() []byte {
	j, _ := json.Marshal(apiError{Error: "this port speaks HTTPS: use https:// (plain HTTP is refused)"})
	return append([]byte("HTTP/1.0 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "+strconv.Itoa(len(j))+"\r\n\r\n"), j...)
}()

func (c *trackedConn) Write(b []byte) (int, error) {
	if string(b) == httpToHTTPS {
		if _, err := c.Conn.Write(httpToHTTPSJSON); err != nil {
			return 0, err
		}
		return len(b), nil
	}
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
