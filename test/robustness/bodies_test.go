package robustness

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// bodiesTimeout is the server's --device-body-timeout in this file: short,
// so that stalled bodies are answered quickly.
const bodiesTimeout = 500 * time.Millisecond

// bodiesFault is one faulty request: bytes sent over a fresh connection,
// then what the device does.
type bodiesFault struct {
	name string
	// raw sends over plain TCP (not TLS) to the TLS port.
	raw   bool
	bytes string
	// end: "half" closes the sending side (TLS close_notify) and reads,
	// "close" drops the connection without reading, "wait" stalls and
	// reads.
	end string
	// want is the status expected when an answer comes; 0 any below 500.
	want int
}

// TestBodiesFaultyRequests sends a real `zdps serve` truncated, stalled,
// garbage, oversized and half-closed requests to register and status
// lookup over raw TLS (and plain TCP) connections. No answer is 5xx, the
// server logs no ERROR, and afterwards it still registers a real device.
func TestBodiesFaultyRequests(t *testing.T) {
	srv := zdpstest.Start(t, "--device-body-timeout", bodiesTimeout.String())
	ctx := t.Context()
	cl := srv.Client()
	if _, err := cl.PutHub(ctx, &enrollment.Hub{Name: "hub-1.example.net", AllocationWeight: 1}, ""); err != nil {
		t.Fatal(err)
	}
	const regID = "bodies-dev"
	key := srv.SymmetricKeyEnrollment(regID)
	scope := srv.IDScope()
	auth := sas.Build(key, scope+"/registrations/"+regID, "registration", time.Now().Add(time.Hour))

	faults := bodiesFaults(scope, regID, auth, srv.Addr())
	counts := map[int]int{}
	answered := 0
	for _, f := range faults {
		status, ok := bodiesSend(t, srv, f)
		if !ok {
			counts[0]++
			continue
		}
		answered++
		counts[status]++
		if status >= 500 {
			t.Errorf("%s: answered %d", f.name, status)
		} else if f.want != 0 && status != f.want {
			t.Errorf("%s: answered %d, want %d", f.name, status, f.want)
		}
	}
	t.Logf("%d faulty requests, %d answered; by status (0: no answer): %v", len(faults), answered, counts)
	if len(faults) < 40 {
		t.Errorf("only %d faulty requests", len(faults))
	}

	// The server still serves a real device.
	res, err := device.Register(ctx, device.Config{
		Endpoint: srv.Addr(), IDScope: scope, RegistrationID: regID, SymmetricKey: key,
		GenerateKey: true, RootCAs: srv.RootCAs(), MaxRetries: 2, MaxWait: 30 * time.Second,
	})
	if err != nil || res.Status != "assigned" || len(res.IssuedCertificateChain) == 0 {
		t.Fatalf("a real device after the faults: %v %+v", err, res)
	}
	if !srv.LogContains(`"outcome":"assigned"`) {
		t.Fatal("the registration is not in the log")
	}
	logs := srv.Logs()
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"level":"ERROR"`) {
			t.Errorf("ERROR logged: %s", line)
		}
	}
	t.Logf("log: %d lines, %d \"device body refused\" (INFO, at most 10 per kind a minute), %d suppressed summaries so far",
		strings.Count(logs, "\n"), strings.Count(logs, `"msg":"device body refused"`), strings.Count(logs, `"msg":"suppressed `))
}

// bodiesFaults are the faulty requests, each against register (PUT) and
// status lookup (POST).
func bodiesFaults(scope, regID, auth, host string) []bodiesFault {
	good := `{"registrationId":"` + regID + `"}`
	bigPayload := `{"registrationId":"` + regID + `","payload":"` + strings.Repeat("p", 81<<10) + `"}`
	var out []bodiesFault
	for _, target := range []struct{ method, path string }{
		{"PUT", "/" + scope + "/registrations/" + regID + "/register?api-version=2021-06-01"},
		{"POST", "/" + scope + "/registrations/" + regID + "?api-version=2021-06-01"},
	} {
		h := func(framing string, withAuth bool) string {
			s := target.method + " " + target.path + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json; charset=utf-8\r\n"
			if withAuth {
				s += "Authorization: " + auth + "\r\n"
			}
			return s + framing + "\r\n\r\n"
		}
		cl := func(n int) string { return fmt.Sprintf("Content-Length: %d", n) }
		name := func(s string) string { return target.method + " " + s }
		out = append(out,
			bodiesFault{name: name("truncated body, half-closed"), bytes: h(cl(len(good)+40), true) + good, end: "half", want: 400},
			bodiesFault{name: name("truncated body, unauthenticated"), bytes: h(cl(100), false) + good[:10], end: "half", want: 400},
			bodiesFault{name: name("truncated body, dropped"), bytes: h(cl(100), false) + good[:10], end: "close"},
			bodiesFault{name: name("body declared, none sent, half-closed"), bytes: h(cl(50), false), end: "half", want: 400},
			bodiesFault{name: name("chunked without its last chunk"), bytes: h("Transfer-Encoding: chunked", false) + fmt.Sprintf("%x\r\n%s\r\n", len(good), good), end: "half", want: 400},
			bodiesFault{name: name("chunk cut short"), bytes: h("Transfer-Encoding: chunked", false) + "100\r\n" + good, end: "half", want: 400},
			bodiesFault{name: name("garbage chunk size"), bytes: h("Transfer-Encoding: chunked", false) + "zz\r\n" + good + "\r\n0\r\n\r\n", end: "wait", want: 400},
			bodiesFault{name: name("stalled mid-body"), bytes: h(cl(100), true) + good[:10], end: "wait", want: 400},
			bodiesFault{name: name("stalled before the body"), bytes: h(cl(100), false), end: "wait", want: 400},
			bodiesFault{name: name("stalled chunked"), bytes: h("Transfer-Encoding: chunked", false) + "5\r\n{\"reg", end: "wait", want: 400},
			bodiesFault{name: name("garbage body"), bytes: h(cl(12), false) + "\x00\xff\xfe\x01garbage!", end: "wait", want: 400},
			bodiesFault{name: name("JSON of the wrong shape"), bytes: h(cl(22), false) + `{"registrationId":[1]}`, end: "wait", want: 400},
			bodiesFault{name: name("payload over the limit"), bytes: h(cl(len(bigPayload)), true) + bigPayload, end: "wait", want: 400},
			bodiesFault{name: name("declared body over the limit"), bytes: h(cl(10<<20), false) + good, end: "half", want: 413},
			bodiesFault{name: name("chunked body over the limit"), bytes: h("Transfer-Encoding: chunked", false) + fmt.Sprintf("%x\r\n%s\r\n", 200<<10, strings.Repeat(" ", 200<<10)) + "0\r\n\r\n", end: "wait", want: 413},
			bodiesFault{name: name("complete request, half-closed"), bytes: h(cl(len(good)), true) + good, end: "half"},
			bodiesFault{name: name("complete request, dropped"), bytes: h(cl(len(good)), true) + good, end: "close"},
			bodiesFault{name: name("bad Content-Length"), bytes: h("Content-Length: 12abc", false) + good, end: "half", want: 400},
			bodiesFault{name: name("Content-Length and chunked"), bytes: h(cl(len(good))+"\r\nTransfer-Encoding: chunked", false) + good, end: "half", want: 400},
			bodiesFault{name: name("headers cut short"), bytes: target.method + " " + target.path + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Le", end: "half"},
		)
	}
	out = append(out,
		bodiesFault{name: "garbage instead of a request line", bytes: "\x16\x03garbage garbage\r\n\r\n", end: "half", want: 400},
		bodiesFault{name: "plain HTTP on the TLS port", raw: true, bytes: "PUT / HTTP/1.1\r\nHost: x\r\n\r\n", end: "half"},
		bodiesFault{name: "random bytes on the TLS port", raw: true, bytes: "\x00\x01\x02\x03\xff\xfe\xfd", end: "half"},
	)
	return out
}

// bodiesSend makes one faulty request and returns the answer's status;
// ok is false when the server closed the connection without one (or the
// request was dropped before reading).
func bodiesSend(t *testing.T, srv *zdpstest.Server, f bodiesFault) (status int, ok bool) {
	t.Helper()
	var conn net.Conn
	var err error
	if f.raw {
		conn, err = net.DialTimeout("tcp", srv.Addr(), 10*time.Second)
	} else {
		d := &net.Dialer{Timeout: 10 * time.Second}
		conn, err = tls.DialWithDialer(d, "tcp", srv.Addr(), &tls.Config{RootCAs: srv.RootCAs(), NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12})
	}
	if err != nil {
		t.Fatalf("%s: dial: %v", f.name, err)
	}
	defer conn.Close()
	// Every read and write ends in bounded time; a stalled body is
	// answered after bodiesTimeout (well before the 10 s default, so the
	// flag is proven to reach the device API).
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := io.WriteString(conn, f.bytes); err != nil {
		// The server may answer and close before taking everything (a
		// declared length over the limit); read what it said.
		t.Logf("%s: write: %v", f.name, err)
	}
	switch f.end {
	case "close":
		return 0, false
	case "half":
		if tc, isTLS := conn.(*tls.Conn); isTLS {
			_ = tc.CloseWrite()
		} else {
			_ = conn.(*net.TCPConn).CloseWrite()
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if strings.HasPrefix(f.name[strings.Index(f.name, " ")+1:], "stalled") {
		if took := time.Since(start); took < bodiesTimeout || took > bodiesTimeout+5*time.Second {
			t.Errorf("%s: answered after %s, want about %s", f.name, took, bodiesTimeout)
		}
	}
	return resp.StatusCode, true
}
