package device

import (
	"context"
	"strings"
)

// Transports of Config.Transport.
const (
	// TransportHTTPS is the REST device API (docs/protocol.md#device-api-over-https), the default.
	TransportHTTPS = "https"
	// TransportMQTT is MQTT 3.1.1 over TLS, port 8883 by default
	// (docs/protocol.md#device-api-over-mqtt).
	TransportMQTT = "mqtt"
	// TransportMQTTWS is MQTT 3.1.1 over a WebSocket at
	// /$iothub/websocket, port 443 by default.
	TransportMQTTWS = "mqtt-ws"
)

// request is one request of a registration: the register PUT (op empty)
// or the poll of operation op.
type request struct {
	op   string
	body []byte
}

// String names the request in messages; it holds no secret.
func (q request) String() string {
	if q.op == "" {
		return "register"
	}
	return "operation status " + q.op
}

// reply is one answer of the service, whatever carried it: its HTTP
// status (MQTT answers carry one in their topic too), the raw body, and
// the few header values the protocol uses.
type reply struct {
	code int
	// retryAfter is the Retry-After header or the topic's retry-after,
	// unparsed; empty when absent.
	retryAfter  string
	trackingID  string
	errorCode   string
	contentType string
	raw         []byte
}

// carrier carries requests. A returned error is a failure to get an
// answer (network, TLS, timeout, a refused MQTT CONNECT as *Error); the
// Client decides which are transient.
type carrier interface {
	do(ctx context.Context, q request) (*reply, error)
	close()
}

// normalizeTransport is Config.Transport in its canonical spelling.
func normalizeTransport(t string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(t)) {
	case "", TransportHTTPS:
		return TransportHTTPS, nil
	case TransportMQTT:
		return TransportMQTT, nil
	case TransportMQTTWS, "mqttws", "mqtt-websocket":
		return TransportMQTTWS, nil
	}
	return "", invalidConfig("Transport %q: want %s, %s or %s", t, TransportHTTPS, TransportMQTT, TransportMQTTWS)
}
