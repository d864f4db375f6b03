package deviceapi_test

import (
	"bufio"
	"crypto/elliptic"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/deviceapi"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/pkg/dps"
)

// rawAnswer is what a raw connection read back: the answer, or none when
// the server closed the connection without one.
type rawAnswer struct {
	answer
	none bool
	// close: the answer carried Connection: close (http.ReadResponse
	// moves the header into Response.Close).
	close bool
	took  time.Duration
}

// rawRequest sends head and body over a fresh TLS connection to s and
// reads the answer. halfClose ends the device's side after the bytes
// (TLS close_notify: the server reads EOF); otherwise the connection
// stays open, as a stalled device's does.
func (s *server) rawRequest(t *testing.T, head string, body []byte, halfClose bool) rawAnswer {
	t.Helper()
	cfg := s.srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	conn, err := tls.Dial("tcp", s.srv.Listener.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(body); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		if err := conn.CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return rawAnswer{none: true, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return rawAnswer{answer: answer{resp.StatusCode, resp.Header, b}, close: resp.Close, took: time.Since(start)}
}

// head is a request head; contentLength < 0 sends the body chunked.
func head(method, path, auth string, contentLength int) string {
	h := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json; charset=utf-8\r\n", method, path)
	if auth != "" {
		h += "Authorization: " + auth + "\r\n"
	}
	if contentLength < 0 {
		return h + "Transfer-Encoding: chunked\r\n\r\n"
	}
	return h + fmt.Sprintf("Content-Length: %d\r\n\r\n", contentLength)
}

// noErrorLogged fails when the server logged anything at ERROR.
func noErrorLogged(t *testing.T, s *server) {
	t.Helper()
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Fatalf("ERROR logged: %s", line)
		}
	}
}

// refusal is the first "device body refused" line of logs, nil if none.
func refusal(logs string) map[string]any {
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "device body refused" {
			return m
		}
	}
	return nil
}

// TestBodyFaults: truncated, stalled, unreadable, malformed and oversized
// bodies of register, status lookup and the operation poll are the
// device's fault: 400/400004 in the DPS format, Connection: close when
// the connection's framing is lost, an INFO line and never an ERROR; a
// payload at the limit with a CSR is registered. Each runs on the device
// API's own router and mounted on internal/api's, as zdps serve has it.
func TestBodyFaults(t *testing.T) {
	const bodyTimeout = 300 * time.Millisecond
	const maxPayload = deviceapi.DefaultMaxPayloadBytes
	for _, via := range []bool{false, true} {
		t.Run(fmt.Sprintf("viaAPI=%v", via), func(t *testing.T) {
			s := newServer(t, options{viaAPI: via, bodyTimeout: bodyTimeout})
			auth := token(t, key(t, primaryKey), "dev-1", time.Now().Add(time.Hour))
			reg := "/" + idScope + "/registrations/dev-1/register?api-version=2021-06-01"
			status := "/" + idScope + "/registrations/dev-1?api-version=2021-06-01"
			poll := "/" + idScope + "/registrations/dev-1/operations/0123456789abcdef0123456789abcdef?api-version=2021-06-01"
			good := `{"registrationId":"dev-1"}`
			// payloadOf is a body whose payload (a JSON string) is n bytes.
			payloadOf := func(n int, extra string) string {
				return `{"registrationId":"dev-1",` + extra + `"payload":"` + strings.Repeat("p", n-2) + `"}`
			}
			tests := []struct {
				name, method, path, auth string
				// contentLength of the head; -1 chunked, -2 len(body).
				contentLength int
				body          string
				halfClose     bool
				status, code  int
				close         bool
				// kind of the INFO line; "" none expected.
				kind string
				// msg must be in the answer's message.
				msg string
			}{
				{"register truncated", "PUT", reg, "", 100, good[:12], true, 400, 400004, true, "body truncated", "Content-Length"},
				{"status lookup truncated", "POST", status, "", 100, good[:12], true, 400, 400004, true, "body truncated", "Content-Length"},
				{"operation poll truncated", "GET", poll, auth, 100, `{`, true, 400, 400004, true, "body truncated", "Content-Length"},
				{"register chunked, last chunk missing", "PUT", reg, "", -1, "1a\r\n" + good + "\r\n", true, 400, 400004, true, "body truncated", ""},
				{"register chunked, garbage chunk size", "PUT", reg, "", -1, "zz\r\n" + good + "\r\n0\r\n\r\n", false, 400, 400004, true, "body unreadable", "could not be read"},
				{"register stalled", "PUT", reg, "", 100, good[:12], false, 400, 400004, true, "body stalled", bodyTimeout.String()},
				{"status lookup stalled", "POST", status, "", 100, good[:12], false, 400, 400004, true, "body stalled", bodyTimeout.String()},
				{"register stalled before any byte", "PUT", reg, "", 100, "", false, 400, 400004, true, "body stalled", bodyTimeout.String()},
				{"register malformed JSON", "PUT", reg, "", -2, `{"registrationId":"dev-1",`, false, 400, 400004, false, "body malformed", "JSON ends early"},
				{"status lookup malformed JSON", "POST", status, "", -2, `{"registrationId" "dev-1"}`, false, 400, 400004, false, "body malformed", "malformed JSON"},
				{"register not JSON at all", "PUT", reg, "", -2, "\x00\xff\xfegarbage", false, 400, 400004, false, "body malformed", "malformed JSON"},
				{"register registrationId of the wrong type", "PUT", reg, "", -2, `{"registrationId":1}`, false, 400, 400004, false, "body malformed", "field registrationId has the wrong type"},
				{"register csr of the wrong type", "PUT", reg, "", -2, `{"registrationId":"dev-1","csr":5}`, false, 400, 400004, false, "body malformed", "field csr has the wrong type"},
				{"register tpm of the wrong type", "PUT", reg, "", -2, `{"registrationId":"dev-1","tpm":"x"}`, false, 400, 400004, false, "body malformed", "field tpm has the wrong type"},
				{"register payload over the limit", "PUT", reg, auth, -2, payloadOf(maxPayload+1, ""), false, 400, 400004, false, "payload too large", fmt.Sprintf("payload is %d bytes of JSON; the limit is %d bytes", maxPayload+1, maxPayload)},
				{"status lookup payload over the limit", "POST", status, auth, -2, payloadOf(maxPayload+1, ""), false, 400, 400004, false, "payload too large", "the limit is"},
				{"register payload at the limit, with a CSR", "PUT", reg, auth, -2, payloadOf(maxPayload, `"csr":"`+csr(t, "dev-1", elliptic.P256())+`",`), false, 200, 0, false, "", ""},
				{"register body over MaxBodyBytes", "PUT", reg, auth, -2, payloadOf(deviceapi.DefaultMaxBodyBytes+1, ""), false, 413, 413004, false, "", ""},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					cl := tc.contentLength
					if cl == -2 {
						cl = len(tc.body)
					}
					before := len(s.logs.String())
					a := s.rawRequest(t, head(tc.method, tc.path, tc.auth, cl), []byte(tc.body), tc.halfClose)
					if a.none {
						t.Fatalf("no answer (after %s)", a.took)
					}
					if tc.status == 200 {
						if a.status != 200 || a.json(t)["status"] != "assigned" {
							t.Fatalf("%d %s", a.status, a.body)
						}
					} else {
						checkError(t, a.answer, tc.status, tc.code)
						if msg, _ := a.json(t)["message"].(string); !strings.Contains(msg, tc.msg) {
							t.Fatalf("message %q lacks %q", msg, tc.msg)
						}
					}
					if a.close != tc.close {
						t.Fatalf("Connection: close is %v, want %v", a.close, tc.close)
					}
					if strings.Contains(tc.name, "stalled") && (a.took < bodyTimeout || a.took > bodyTimeout+5*time.Second) {
						t.Fatalf("a stalled body answered after %s, want about %s", a.took, bodyTimeout)
					}
					if got := refusal(s.logs.String()[before:]); tc.kind != "" && (got["level"] != "INFO" || got["kind"] != tc.kind) {
						t.Fatalf("refusal logged as %v, want an INFO line of kind %q", got, tc.kind)
					}
					noErrorLogged(t, s)
				})
			}
		})
	}
}

// TestClientGone: a device that half-closes its connection after a
// complete register (net/http then cancels the request) is answered
// below 429, logged at INFO, never ERROR.
func TestClientGone(t *testing.T) {
	s := newServer(t, options{viaAPI: true})
	auth := token(t, key(t, primaryKey), "dev-1", time.Now().Add(time.Hour))
	body := `{"registrationId":"dev-1","csr":"` + csr(t, "dev-1", elliptic.P256()) + `"}`
	for i := range 5 {
		a := s.rawRequest(t, head("PUT", "/"+idScope+"/registrations/dev-1/register?api-version=2021-06-01", auth, len(body)), []byte(body), true)
		if a.none {
			continue // the server may see the close only after answering
		}
		t.Logf("attempt %d: %d close=%v %s", i, a.status, a.close, a.body)
		if a.status >= 429 {
			t.Fatalf("attempt %d: %d %s", i, a.status, a.body)
		}
		if a.status != 200 {
			checkError(t, a.answer, 400, dps.CodeBadArgument)
			if !a.close {
				t.Fatalf("attempt %d: no Connection: close", i)
			}
		}
	}
	noErrorLogged(t, s)
}

// TestBodyFaultLogIsRateLimited: a device repeating a bad body cannot
// fill the log: refusals of one kind write a bounded number of lines.
func TestBodyFaultLogIsRateLimited(t *testing.T) {
	s := newServer(t, options{})
	path := "/" + idScope + "/registrations/dev-1/register?api-version=2021-06-01"
	const n = 40
	for range n {
		checkError(t, s.do(t, http.MethodPut, path, "", []byte(`{"registrationId":`), nil), 400, dps.CodeBadArgument)
	}
	lines := strings.Count(s.logs.String(), `"msg":"device body refused"`)
	if lines == 0 || lines >= n/2 {
		t.Fatalf("%d refusal lines for %d refused bodies, want a few", lines, n)
	}
	noErrorLogged(t, s)
}

// TestBodyLimitFollowsThePayloadLimit: the default body limit is Azure's
// unless the payload limit needs more, so that a payload at its limit
// always fits with a CSR.
func TestBodyLimitFollowsThePayloadLimit(t *testing.T) {
	svc := &provisioning.Service{}
	tests := []struct {
		maxBody, maxPayload, want int64
	}{
		{0, 0, deviceapi.DefaultMaxBodyBytes},
		{0, 4 << 10, deviceapi.DefaultMaxBodyBytes},
		{0, 200 << 10, 200<<10 + deviceapi.BodyRoom},
		{1 << 20, 0, 1 << 20},
	}
	for _, tc := range tests {
		a, err := deviceapi.New(deviceapi.Config{Provisioner: svc, IDScope: idScope, Logger: slog.New(slog.DiscardHandler), MaxBodyBytes: tc.maxBody, MaxPayloadBytes: tc.maxPayload})
		if err != nil {
			t.Fatal(err)
		}
		if got := a.MaxBodyBytes(); got != tc.want {
			t.Errorf("MaxBodyBytes %d, MaxPayloadBytes %d: body limit %d, want %d", tc.maxBody, tc.maxPayload, got, tc.want)
		}
	}
	if deviceapi.DefaultMaxPayloadBytes+deviceapi.BodyRoom > deviceapi.DefaultMaxBodyBytes {
		t.Fatal("the default payload limit leaves no room for a CSR in Azure's body limit")
	}
}

// TestTrickledBody: the body deadline is absolute, so a device that
// keeps sending a byte at a time (slowloris) is cut off at BodyTimeout
// like one that stops.
func TestTrickledBody(t *testing.T) {
	const bodyTimeout = 300 * time.Millisecond
	s := newServer(t, options{bodyTimeout: bodyTimeout})
	cfg := s.srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	conn, err := tls.Dial("tcp", s.srv.Listener.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(15 * time.Second)); err != nil {
		t.Fatal(err)
	}
	body := `{"registrationId":"dev-1"}` + strings.Repeat(" ", 200)
	start := time.Now()
	if _, err := io.WriteString(conn, head("PUT", "/"+idScope+"/registrations/dev-1/register?api-version=2021-06-01", "", len(body))); err != nil {
		t.Fatal(err)
	}
	answered := make(chan rawAnswer, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			answered <- rawAnswer{none: true}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answered <- rawAnswer{answer: answer{resp.StatusCode, resp.Header, b}, close: resp.Close, took: time.Since(start)}
	}()
	// A byte every 20 ms would take 4.5 s for the whole body.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; {
		select {
		case a := <-answered:
			if a.none {
				t.Fatal("no answer")
			}
			checkError(t, a.answer, 400, dps.CodeBadArgument)
			if !a.close || a.took < bodyTimeout || a.took > bodyTimeout+3*time.Second || i >= len(body) {
				t.Fatalf("answered after %s and %d of %d bytes, Connection: close %v; want about %s, close", a.took, i, len(body), a.close, bodyTimeout)
			}
			noErrorLogged(t, s)
			return
		case <-tick.C:
			if i < len(body) {
				_, _ = conn.Write([]byte{body[i]})
				i++
			}
		}
	}
}
