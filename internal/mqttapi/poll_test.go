package mqttapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// httpsDevice is a symmetric-key device on the HTTPS device API.
type httpsDevice struct {
	t          *testing.T
	hc         *http.Client
	base, auth string
}

func (d *httpsDevice) do(method, path, body string) (int, http.Header, map[string]any) {
	d.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, d.base+path, strings.NewReader(body))
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("Authorization", d.auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.hc.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, resp.Header, m
}

// TestPollAcrossTransports: with --azure-202 register answers 202 and the
// device polls; the operation is in the store, so MQTT polls what HTTPS
// started and HTTPS what MQTT started.
func TestPollAcrossTransports(t *testing.T) {
	srv := start(t, "--azure-202")
	scope := srv.IDScope()
	regID := "poll-x-1"
	key := srv.SymmetricKeyEnrollment(regID)
	auth := sasFor(key, scope, regID, "registration")
	d, err := connect(t, dialOpts{broker: "tls://" + srv.MQTTAddr(), regID: regID, userName: userName(scope, regID), password: auth, tls: srv.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	h := &httpsDevice{t: t, hc: srv.HTTPClient(), base: "https://" + srv.Addr() + "/" + scope + "/registrations/" + regID, auth: auth}

	// MQTT register, MQTT poll, HTTPS poll.
	a := d.register(`{"registrationId":"` + regID + `"}`)
	opID, _ := a.Body["operationId"].(string)
	if a.Status != 202 || a.RetryAfter != "1" || a.Body["status"] != "assigning" || opID == "" {
		t.Fatalf("register answered %d retry-after %q %s", a.Status, a.RetryAfter, a.Raw)
	}
	if p := d.poll(opID); p.Status != 200 || p.Body["status"] != "assigned" || p.RetryAfter != "" {
		t.Fatalf("MQTT poll answered %d %s", p.Status, p.Raw)
	}
	if code, _, body := h.do("GET", "/operations/"+url.PathEscape(opID)+"?api-version=2021-06-01", ""); code != 200 || body["status"] != "assigned" {
		t.Fatalf("HTTPS poll of an MQTT operation answered %d %v", code, body)
	}

	// HTTPS register, MQTT poll.
	code, hdr, body := h.do("PUT", "/register?api-version=2021-06-01", `{"registrationId":"`+regID+`"}`)
	opID, _ = body["operationId"].(string)
	if code != 202 || hdr.Get("Retry-After") == "" || opID == "" {
		t.Fatalf("HTTPS register answered %d %v", code, body)
	}
	if p := d.poll(opID); p.Status != 200 || p.Body["status"] != "assigned" {
		t.Fatalf("MQTT poll of an HTTPS operation answered %d %s", p.Status, p.Raw)
	}
	// Another device's (or no) operation: 404 in the DPS error format.
	if p := d.poll("0123456789abcdef0123456789abcdef"); p.Status != 404 || p.Body["errorCode"] != float64(404201) {
		t.Fatalf("poll of an unknown operation answered %d %s", p.Status, p.Raw)
	}
}

// TestThrottledOverMQTT: a throttled register answers 429 with
// retry-after last in the topic and a DPS error body.
func TestThrottledOverMQTT(t *testing.T) {
	srv := start(t, "--throttle-register", "1/1m")
	scope := srv.IDScope()
	regID := "throttled-1"
	key := srv.SymmetricKeyEnrollment(regID)
	d, err := connect(t, dialOpts{broker: "tls://" + srv.MQTTAddr(), regID: regID, userName: userName(scope, regID), password: sasFor(key, scope, regID, ""), tls: srv.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if a := d.register(""); a.Status != 200 {
		t.Fatalf("first register answered %d %s", a.Status, a.Raw)
	}
	a := d.register("")
	if a.Status != 429 || a.Body["errorCode"] != float64(429001) || a.Body["trackingId"] == "" {
		t.Fatalf("second register answered %d %s", a.Status, a.Raw)
	}
	secs, err := time.ParseDuration(a.RetryAfter + "s")
	if err != nil || secs < time.Second || secs > time.Minute {
		t.Fatalf("retry-after %q", a.RetryAfter)
	}
}
