package api

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/dps"
)

// rawCall sends head and body over a fresh TLS connection and reads the
// answer; halfClose ends the client's side after the bytes (TLS
// close_notify). ok is false when the server closed without answering.
func (e *env) rawCall(head string, body []byte, halfClose bool) (r reply, closed, ok bool) {
	e.t.Helper()
	cfg := e.srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	conn, err := tls.Dial("tcp", e.srv.Listener.Addr().String(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(15 * time.Second)); err != nil {
		e.t.Fatal(err)
	}
	if _, err := io.WriteString(conn, head); err != nil {
		e.t.Fatal(err)
	}
	if _, err := conn.Write(body); err != nil {
		e.t.Fatal(err)
	}
	if halfClose {
		if err := conn.CloseWrite(); err != nil {
			e.t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return reply{}, false, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("reading the answer: %v", err)
	}
	// http.ReadResponse moves Connection: close into resp.Close.
	return reply{resp.StatusCode, resp.Header, b}, resp.Close, true
}

func (e *env) noErrorLogged() {
	e.t.Helper()
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			e.t.Fatalf("ERROR logged: %s", line)
		}
	}
}

// TestConnectionFaults: a body cut short or badly chunked, and a client
// that closes its side before the answer, are the client's faults: 400
// in the DPS format with Connection: close (or no answer at all), an
// INFO line, never a 5xx or an ERROR line.
func TestConnectionFaults(t *testing.T) {
	e := newEnv(t)
	body, err := json.Marshal(symEnrollment("dev-1"))
	if err != nil {
		t.Fatal(err)
	}
	path := "/enrollments/dev-1?api-version=" + testVersion
	headOf := func(method string, framing string) string {
		return fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Type: application/json\r\n%s\r\n\r\n", method, path, e.host, e.ownerTok, framing)
	}
	tests := []struct {
		name      string
		head      string
		body      []byte
		halfClose bool
		msg       string
	}{
		{"truncated", headOf("PUT", fmt.Sprintf("Content-Length: %d", len(body)+50)), body, true, "ended before its Content-Length"},
		{"chunked without its last chunk", headOf("PUT", "Transfer-Encoding: chunked"), []byte(fmt.Sprintf("%x\r\n%s\r\n", len(body), body)), true, "ended before its Content-Length"},
		{"garbage chunk size", headOf("PUT", "Transfer-Encoding: chunked"), []byte("zz\r\n" + string(body) + "\r\n0\r\n\r\n"), false, "could not be read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, closed, ok := e.rawCall(tc.head, tc.body, tc.halfClose)
			if !ok {
				t.Fatal("no answer")
			}
			if r.status != http.StatusBadRequest || !closed {
				t.Fatalf("%d (Connection: close %v) %s, want 400 and close", r.status, closed, r.body)
			}
			if eb := r.errBody(t); eb.ErrorCode != dps.CodeBadArgument || !strings.Contains(eb.Message, tc.msg) || strings.Contains(eb.Message, "127.0.0.1") {
				t.Fatalf("error %+v, want 400004 saying %q without addresses", eb, tc.msg)
			}
			if !strings.Contains(e.logs.String(), `"level":"INFO","msg":"connection fault"`) {
				t.Fatalf("no INFO line:\n%s", e.logs.String())
			}
			e.noErrorLogged()
		})
	}
	// A client that half-closes after a complete request: net/http
	// cancels the request as soon as it reads the EOF, which races with
	// the handler; whichever wins, the answer is below 500.
	t.Run("half-closed after a complete request", func(t *testing.T) {
		get := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n\r\n", path, e.host, e.ownerTok)
		e.must(req{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-1")}, http.StatusOK)
		gone := 0
		for range 30 {
			r, closed, ok := e.rawCall(get, nil, true)
			if !ok {
				continue
			}
			if r.status >= 500 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if r.status == http.StatusBadRequest {
				if eb := r.errBody(t); eb.ErrorCode != dps.CodeBadArgument || !closed {
					t.Fatalf("%+v (Connection: close %v)", eb, closed)
				}
				gone++
			}
		}
		t.Logf("30 half-closed GETs: %d answered 400 (the client gone first), the rest 200", gone)
		e.noErrorLogged()
	})
}
