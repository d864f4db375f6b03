package device

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/zdps/zdps/pkg/dps"
)

// mqttKeepAlive is the keep-alive the client announces in CONNECT; a
// registration needs the connection for seconds, this only has to
// outlast the longest Retry-After between polls without a PINGREQ storm.
const mqttKeepAlive = 60 * time.Second

// mqttDisconnectWait bounds the wait for DISCONNECT to be written.
const mqttDisconnectWait = 250 * time.Millisecond

// mqttTransport carries the registration over one MQTT connection (TLS
// or a WebSocket): CONNECT with the registration ID as client ID and the
// SAS as password, SUBSCRIBE to the answers, then one PUBLISH per request,
// answered on $dps/registrations/res/{status}/?$rid=... A lost connection
// fails the requests in flight (transient: the next one reconnects).
type mqttTransport struct {
	c      *Client
	broker string
	tls    *tls.Config

	mu      sync.Mutex
	conn    mqtt.Client
	lost    chan struct{} // closed when conn is lost
	pending map[string]chan mqttMessage
	nextRID uint64
}

type mqttMessage struct {
	ans     dps.MQTTResponse
	payload []byte
}

func newMQTTTransport(c *Client, cfg Config) *mqttTransport {
	t := &mqttTransport{c: c, pending: map[string]chan mqttMessage{}}
	host := c.endpoint
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		port := "8883"
		if cfg.Transport == TransportMQTTWS {
			port = "443"
		}
		host = net.JoinHostPort(host, port)
	}
	t.broker = "ssl://" + host
	if cfg.Transport == TransportMQTTWS {
		t.broker = "wss://" + host + "/$iothub/websocket"
	}
	if cfg.TLSConfig != nil {
		t.tls = cfg.TLSConfig.Clone()
		if cfg.Certificate != nil && len(t.tls.Certificates) == 0 && t.tls.GetClientCertificate == nil {
			cert := cfg.Certificate
			t.tls.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
	} else {
		t.tls = clientTLS(cfg.RootCAs, cfg.Certificate)
	}
	return t
}

func (t *mqttTransport) do(ctx context.Context, q request) (*reply, error) {
	conn, lost, err := t.connect(ctx)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.nextRID++
	rid := strconv.FormatUint(t.nextRID, 10)
	ch := make(chan mqttMessage, 1)
	t.pending[rid] = ch
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.pending, rid)
		t.mu.Unlock()
	}()
	body := q.body
	if body == nil {
		// Polls carry no body; a space as the SDKs send.
		body = []byte(" ")
	}
	// QoS 0, as Azure's C SDKs publish: the answer acknowledges the
	// request, and a lost connection fails it (retried on a new one), so a
	// PUBACK would only add a packet each way.
	pub := conn.Publish(mqttRequest(q, rid).Topic(), 0, false, body)
	published := pub.Done()
	for {
		select {
		case m := <-ch:
			return &reply{code: m.ans.Status, retryAfter: m.ans.RetryAfter, contentType: "application/json", raw: m.payload}, nil
		case <-published:
			if err := pub.Error(); err != nil {
				return nil, fmt.Errorf("device: MQTT publish %s: %w", q, err)
			}
			published = nil
		case <-lost:
			t.dropped(conn, lost)
			return nil, fmt.Errorf("device: MQTT %s: the connection was lost before the answer", q)
		case <-ctx.Done():
			return nil, fmt.Errorf("device: MQTT %s: no answer: %w", q, ctx.Err())
		}
	}
}

// mqttRequest is the topic of q with request ID rid.
func mqttRequest(q request, rid string) dps.MQTTRequest {
	if q.op == "" {
		return dps.MQTTRequest{Kind: dps.MQTTRegister, RID: rid}
	}
	return dps.MQTTRequest{Kind: dps.MQTTPoll, RID: rid, OperationID: q.op}
}

// connect returns the open connection, or connects and subscribes.
func (t *mqttTransport) connect(ctx context.Context) (mqtt.Client, chan struct{}, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn != nil {
		select {
		case <-t.lost:
			// Lost while the handler waited for the lock.
		default:
			if t.conn.IsConnectionOpen() {
				return t.conn, t.lost, nil
			}
		}
		t.conn.Disconnect(0)
		t.conn, t.lost = nil, nil
	}
	c := t.c
	lost := make(chan struct{})
	var conn mqtt.Client
	opts := mqtt.NewClientOptions().
		AddBroker(t.broker).
		SetClientID(c.regID).
		SetUsername(dps.MQTTUserName{IDScope: c.cfg.IDScope, RegistrationID: c.regID, APIVersion: c.cfg.APIVersion, ClientVersion: c.cfg.UserAgent}.String()).
		SetPassword(c.authorization()).
		SetTLSConfig(t.tls).
		// 3.1.1 only: paho would fall back to 3.1 on a refusal.
		SetProtocolVersion(4).
		// DPS stores no session and answers on the connection that asked.
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(mqttKeepAlive).
		SetConnectTimeout(c.cfg.RequestTimeout).
		SetWriteTimeout(c.cfg.RequestTimeout).
		SetDefaultPublishHandler(t.route).
		SetConnectionLostHandler(func(mqtt.Client, error) { t.dropped(conn, lost) })
	conn = mqtt.NewClient(opts)
	tok := conn.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		go func() { tok.Wait(); conn.Disconnect(0) }() // a CONNECT still under way
		return nil, nil, fmt.Errorf("device: MQTT connect: %w", ctx.Err())
	}
	if err := connectError(tok.(*mqtt.ConnectToken)); err != nil {
		conn.Disconnect(0)
		return nil, nil, err
	}
	sub := conn.Subscribe(dps.MQTTResponseFilter, 1, t.route)
	err := waitToken(ctx, sub)
	if err == nil {
		if codes := sub.(*mqtt.SubscribeToken).Result(); codes[dps.MQTTResponseFilter] > 1 {
			err = fmt.Errorf("the service refused the subscription to %s", dps.MQTTResponseFilter)
		}
	}
	if err != nil {
		conn.Disconnect(0)
		return nil, nil, fmt.Errorf("device: MQTT subscribe: %w", err)
	}
	t.conn, t.lost = conn, lost
	return conn, lost, nil
}

// waitToken waits for tok or the end of ctx, and returns tok's error.
func waitToken(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// connectError maps a refused CONNECT to the *Error an HTTP answer would
// give: bad credentials are 401, a rejected client ID 400, an unavailable
// server 503 (transient). A network failure is returned as is.
func connectError(tok *mqtt.ConnectToken) error {
	code := tok.ReturnCode()
	status := 0
	switch code {
	case packets.Accepted:
		return tok.Error()
	case packets.ErrRefusedBadUsernameOrPassword, packets.ErrRefusedNotAuthorised:
		status = http.StatusUnauthorized
	case packets.ErrRefusedIDRejected, packets.ErrRefusedBadProtocolVersion:
		status = http.StatusBadRequest
	case packets.ErrRefusedServerUnavailable:
		status = http.StatusServiceUnavailable
	default:
		if err := tok.Error(); err != nil {
			return fmt.Errorf("device: MQTT connect: %w", err)
		}
		return fmt.Errorf("device: MQTT connect: CONNACK %d", code)
	}
	return &Error{StatusCode: status, Message: fmt.Sprintf("MQTT CONNECT refused with CONNACK %d (%v)", code, packets.ConnErrors[code])}
}

// route hands an answer to the request waiting for its $rid; answers to
// no one (a late one after a timeout) are dropped. It must not block:
// paho calls it from its reader.
func (t *mqttTransport) route(_ mqtt.Client, m mqtt.Message) {
	a, ok := dps.ParseMQTTResponseTopic(m.Topic())
	if !ok {
		return
	}
	t.mu.Lock()
	ch := t.pending[a.RID]
	t.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- mqttMessage{ans: a, payload: m.Payload()}:
	default: // a duplicate
	}
}

// dropped forgets a lost connection and wakes its waiters; it may run
// more than once for one connection.
func (t *mqttTransport) dropped(conn mqtt.Client, lost chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == conn && t.conn != nil {
		t.conn, t.lost = nil, nil
	}
	select {
	case <-lost:
	default:
		close(lost)
	}
}

// close sends DISCONNECT and closes the connection.
func (t *mqttTransport) close() {
	t.mu.Lock()
	conn := t.conn
	t.conn, t.lost = nil, nil
	t.mu.Unlock()
	if conn != nil {
		conn.Disconnect(uint(mqttDisconnectWait / time.Millisecond))
	}
}
