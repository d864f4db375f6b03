package device

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/zdps/zdps/pkg/sas"
)

func TestMQTTRequest(t *testing.T) {
	cases := []struct {
		q    request
		rid  string
		want string
	}{
		{request{body: []byte(`{}`)}, "1", "$dps/registrations/PUT/iotdps-register/?$rid=1"},
		{request{op: "4.0123456789abcdef.0f1e2d3c"}, "7", "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=7&operationId=4.0123456789abcdef.0f1e2d3c"},
	}
	for _, tc := range cases {
		if got := mqttRequest(tc.q, tc.rid).Topic(); got != tc.want {
			t.Errorf("mqttRequest(%v, %q) = %q, want %q", tc.q, tc.rid, got, tc.want)
		}
	}
}

func TestMQTTBrokerURL(t *testing.T) {
	cases := []struct {
		transport, endpoint, want string
	}{
		{TransportMQTT, "dps.example", "ssl://dps.example:8883"},
		{TransportMQTT, "dps.example:9883", "ssl://dps.example:9883"},
		{TransportMQTTWS, "dps.example", "wss://dps.example:443/$iothub/websocket"},
		{TransportMQTTWS, "https://dps.example:8443/", "wss://dps.example:8443/$iothub/websocket"},
		{"MQTT", "[::1]", "ssl://[::1]:8883"},
	}
	for _, tc := range cases {
		c, err := New(Config{Endpoint: tc.endpoint, Transport: tc.transport, IDScope: testScope, RegistrationID: "dev-1", SymmetricKey: testKey})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.tr.(*mqttTransport).broker; got != tc.want {
			t.Errorf("%s %s: broker %q, want %q", tc.transport, tc.endpoint, got, tc.want)
		}
	}
}

func TestMQTTInvalidConfig(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
	}{
		{"unknown transport", func(c *Config) { c.Transport = "amqp" }},
		{"TPM over MQTT", func(c *Config) { c.SymmetricKey, c.TPM = nil, noTPM{} }},
		{"TPM over MQTT-WS", func(c *Config) { c.SymmetricKey, c.TPM, c.Transport = nil, noTPM{}, TransportMQTTWS }},
		{"HTTPClient with MQTT", func(c *Config) { c.HTTPClient = http.DefaultClient }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Endpoint: "dps.example", Transport: TransportMQTT, IDScope: testScope, RegistrationID: "dev-1", SymmetricKey: testKey}
			tc.mutate(&cfg)
			_, err := New(cfg)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("want ErrInvalidConfig, got %v", err)
			}
			if strings.Contains(tc.name, "TPM") && !strings.Contains(err.Error(), "HTTPS only") {
				t.Errorf("the refusal does not say TPM is HTTPS only: %v", err)
			}
		})
	}
}

func TestMQTTRegistration(t *testing.T) {
	clk := newClock()
	f := newFakeMQTT(t, tls.NoClientCert, packets.Accepted,
		mqttStep{status: 202, retryAfter: 3, body: assigningBody},
		mqttStep{status: 429, retryAfter: 5, body: errBody(429001, "throttled")},
		mqttStep{status: 200, body: assigned("")})
	cfg := mqttConfig(f, clk)
	cfg.Payload = json.RawMessage(`{"model":"m1"}`)
	res, err := Register(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.AssignedHub != "hub-a.example.net" || res.DeviceID != "dev-1" || res.OperationID != "op-1" {
		t.Fatalf("result %+v", res)
	}
	if got, want := clk.Sleeps(), []time.Duration{3 * time.Second, 5 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("waits %v, want %v (retry-after of the 202 and the 429)", got, want)
	}
	reqs := f.requests()
	if len(reqs) != 3 || f.connections() != 1 {
		t.Fatalf("%d requests on %d connections, want 3 on 1", len(reqs), f.connections())
	}
	r := reqs[0]
	if r.clientID != "dev-1" || r.username != testScope+"/registrations/dev-1/api-version="+DefaultAPIVersion+"&ClientVersion=zdps-device-go" {
		t.Errorf("CONNECT client ID %q user name %q", r.clientID, r.username)
	}
	tok, err := sas.Parse(r.password)
	if err != nil || tok.Resource != url.QueryEscape(testScope+"/registrations/dev-1") || tok.KeyName != "registration" {
		t.Errorf("password is not the registration SAS: %+v %v", tok, err)
	}
	if r.topic != "$dps/registrations/PUT/iotdps-register/?$rid=1" || r.qos != 0 { // QoS 0, as the C SDKs
		t.Errorf("register on %q QoS %d", r.topic, r.qos)
	}
	if r.body != `{"registrationId":"dev-1","payload":{"model":"m1"}}` {
		t.Errorf("register body %s", r.body)
	}
	for i, r := range reqs[1:] {
		if r.topic != "$dps/registrations/GET/iotdps-get-operationstatus/?$rid="+string(rune('2'+i))+"&operationId=op-1" {
			t.Errorf("poll %d on %q", i, r.topic)
		}
	}
}

func TestMQTTX509AndCSR(t *testing.T) {
	cert, _ := deviceCert(t, "x509-dev-1")
	key, _ := GenerateKey()
	csr, _ := GenerateCSR("x509-dev-1", key)
	ca := newCA(t, "Issuing CA")
	leaf := ca.sign(t, "x509-dev-1", key.Public(), false)
	body := strings.ReplaceAll(assigned(`,"issuedCertificateChain":["`+base64.StdEncoding.EncodeToString(leaf.Raw)+`"]`), `"dev-1"`, `"x509-dev-1"`)
	f := newFakeMQTT(t, tls.RequestClientCert, packets.Accepted, mqttStep{status: 200, body: body})
	cfg := mqttConfig(f, newClock())
	cfg.SymmetricKey, cfg.RegistrationID, cfg.Certificate, cfg.CSR = nil, "", &cert, csr
	res, err := Register(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IssuedCertificateChain) != 1 || res.DeviceID != "x509-dev-1" {
		t.Fatalf("result %+v", res)
	}
	r := f.requests()[0]
	if r.hasPassword || len(r.peer) != 2 || r.peer[0].Subject.CommonName != "x509-dev-1" {
		t.Errorf("X.509 CONNECT: password flag %v, %d certificates", r.hasPassword, len(r.peer))
	}
	if !strings.Contains(r.username, "/api-version="+CSRAPIVersion) {
		t.Errorf("user name %q lacks the CSR API version", r.username)
	}
}

func TestMQTTRefusals(t *testing.T) {
	cases := []struct {
		name     string
		connack  byte
		steps    []mqttStep
		sentinel error
		status   int
		conns    int
	}{
		{"bad credentials", packets.ErrRefusedBadUsernameOrPassword, nil, ErrUnauthorized, 401, 1},
		{"not authorized", packets.ErrRefusedNotAuthorised, nil, ErrUnauthorized, 401, 1},
		{"client ID rejected", packets.ErrRefusedIDRejected, nil, ErrBadRequest, 400, 1},
		{"server unavailable is retried", packets.ErrRefusedServerUnavailable, nil, ErrGaveUp, 503, 2},
		{"401 answer", packets.Accepted, []mqttStep{{status: 401, body: errBody(401002, "no")}}, ErrUnauthorized, 401, 1},
		{"404 answer", packets.Accepted, []mqttStep{{status: 404, body: errBody(404201, "no scope")}}, ErrNotFound, 404, 1},
		{"failed status", packets.Accepted, []mqttStep{{status: 200, body: `{"operationId":"op-1","status":"failed","registrationState":{"errorCode":400209,"errorMessage":"x"}}`}}, ErrFailed, 200, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeMQTT(t, tls.NoClientCert, tc.connack, tc.steps...)
			cfg := mqttConfig(f, newClock())
			cfg.MaxRetries = 1
			_, err := Register(context.Background(), cfg)
			if !errors.Is(err, tc.sentinel) {
				t.Fatalf("want %v, got %v", tc.sentinel, err)
			}
			var e *Error
			if !errors.As(err, &e) || e.StatusCode != tc.status {
				t.Errorf("want *Error with status %d, got %v", tc.status, err)
			}
			if f.connections() != tc.conns {
				t.Errorf("%d connections, want %d", f.connections(), tc.conns)
			}
			if strings.Contains(err.Error(), "SharedAccessSignature") {
				t.Errorf("the error shows the SAS: %v", err)
			}
		})
	}
}

func TestMQTTLostConnectionReconnects(t *testing.T) {
	clk := newClock()
	f := newFakeMQTT(t, tls.NoClientCert, packets.Accepted, mqttStep{drop: true}, mqttStep{status: 200, body: assigned("")})
	res, err := Register(context.Background(), mqttConfig(f, clk))
	if err != nil {
		t.Fatal(err)
	}
	if res.DeviceID != "dev-1" || f.connections() != 2 {
		t.Fatalf("result %+v on %d connections, want 2", res, f.connections())
	}
	if got := clk.Sleeps(); len(got) != 1 || got[0] != minBackoff/2 {
		t.Errorf("waits %v, want one backoff of %s", got, minBackoff/2)
	}
}

// The service may close an idle connection after an answer (zdps does
// after its idle timeout): the next poll connects again.
func TestMQTTPollAfterHangUpReconnects(t *testing.T) {
	f := newFakeMQTT(t, tls.NoClientCert, packets.Accepted,
		mqttStep{status: 202, retryAfter: 2, body: assigningBody, hangUp: true},
		mqttStep{status: 200, body: assigned("")})
	res, err := Register(context.Background(), mqttConfig(f, newClock()))
	if err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if res.DeviceID != "dev-1" || f.connections() != 2 || len(reqs) != 2 || reqs[1].conn != 2 || !strings.Contains(reqs[1].topic, "operationId=op-1") {
		t.Fatalf("result %+v; %d connections, requests %+v", res, f.connections(), reqs)
	}
}

func TestMQTTTrustFailureIsFinal(t *testing.T) {
	f := newFakeMQTT(t, tls.NoClientCert, packets.Accepted)
	cfg := mqttConfig(f, newClock())
	cfg.RootCAs = poolOf(newCA(t, "Other").cert)
	_, err := Register(context.Background(), cfg)
	if err == nil || errors.Is(err, ErrGaveUp) || f.connections() != 0 {
		t.Fatalf("want a final TLS error, got %v (%d connections)", err, f.connections())
	}
}
