package device

import (
	"crypto/tls"
	"crypto/x509"

	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/zdps/zdps/pkg/dps"
)

// mqttStep is one scripted answer of the fake MQTT service.
type mqttStep struct {
	status     int
	retryAfter int
	body       string
	// drop closes the connection instead of answering; hangUp closes it
	// after the answer.
	drop, hangUp bool
}

// mqttSeen is one request the fake MQTT service received, with the
// CONNECT of its connection.
type mqttSeen struct {
	conn               int
	clientID, username string
	password           string
	hasPassword        bool
	topic, body        string
	qos                byte
	peer               []*x509.Certificate
}

// fakeMQTT is a DPS-shaped MQTT 3.1.1 endpoint over real TLS on
// 127.0.0.1, built on paho's packet codec: CONNACK with connack, SUBACK
// QoS 1, PUBACK, and one scripted answer per request on the answer topic
// with the request's $rid.
type fakeMQTT struct {
	ln      net.Listener
	roots   *x509.CertPool
	connack byte

	mu    sync.Mutex
	steps []mqttStep
	reqs  []mqttSeen
	conns int
	wg    sync.WaitGroup
}

func newFakeMQTT(t *testing.T, clientAuth tls.ClientAuthType, connack byte, steps ...mqttStep) *fakeMQTT {
	t.Helper()
	// httptest's certificate for 127.0.0.1, on a listener of our own.
	hs := httptest.NewUnstartedServer(http.NotFoundHandler())
	hs.StartTLS()
	certs, leaf := hs.TLS.Certificates, hs.Certificate()
	hs.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: certs, ClientAuth: clientAuth, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMQTT{ln: ln, roots: poolOf(leaf), connack: connack, steps: steps}
	f.wg.Go(f.accept)
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *fakeMQTT) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Go(func() { f.serve(c.(*tls.Conn)) })
	}
}

func (f *fakeMQTT) next() mqttStep {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch len(f.steps) {
	case 0:
		return mqttStep{status: 500, body: `{}`}
	case 1:
		return f.steps[0]
	}
	st := f.steps[0]
	f.steps = f.steps[1:]
	return st
}

func (f *fakeMQTT) serve(c *tls.Conn) {
	defer c.Close()
	if c.Handshake() != nil {
		return
	}
	peer := c.ConnectionState().PeerCertificates
	p, err := packets.ReadPacket(c)
	cp, ok := p.(*packets.ConnectPacket)
	if err != nil || !ok {
		return
	}
	f.mu.Lock()
	f.conns++
	n := f.conns
	f.mu.Unlock()
	ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
	ack.ReturnCode = f.connack
	if ack.Write(c) != nil || f.connack != packets.Accepted {
		return
	}
	for {
		p, err := packets.ReadPacket(c)
		if err != nil {
			return
		}
		switch p := p.(type) {
		case *packets.SubscribePacket:
			sa := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
			sa.MessageID = p.MessageID
			sa.ReturnCodes = []byte{1}
			_ = sa.Write(c)
		case *packets.PingreqPacket:
			_ = packets.NewControlPacket(packets.Pingresp).Write(c)
		case *packets.DisconnectPacket:
			return
		case *packets.PublishPacket:
			f.mu.Lock()
			f.reqs = append(f.reqs, mqttSeen{conn: n, clientID: cp.ClientIdentifier, username: cp.Username,
				password: string(cp.Password), hasPassword: cp.PasswordFlag, topic: p.TopicName, body: string(p.Payload), qos: p.Qos, peer: peer})
			f.mu.Unlock()
			if p.Qos == 1 {
				pa := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
				pa.MessageID = p.MessageID
				_ = pa.Write(c)
			}
			st := f.next()
			if st.drop {
				return
			}
			_, q, _ := strings.Cut(p.TopicName, "?")
			rid, _, _ := strings.Cut(strings.TrimPrefix(q, "$rid="), "&")
			ans := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
			ans.TopicName = dps.MQTTResponse{Status: st.status, RID: rid}.Topic()
			if st.retryAfter > 0 {
				ans.TopicName += "&retry-after=" + strconv.Itoa(st.retryAfter)
			}
			ans.Payload = []byte(st.body)
			if ans.Write(c) != nil || st.hangUp {
				return
			}
		}
	}
}

func (f *fakeMQTT) requests() []mqttSeen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]mqttSeen(nil), f.reqs...)
}

func (f *fakeMQTT) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

// mqttConfig is a symmetric-key MQTT configuration against f with a fake
// clock and no jitter.
func mqttConfig(f *fakeMQTT, clk *fakeClock) Config {
	return Config{
		Endpoint:       f.ln.Addr().String(),
		Transport:      TransportMQTT,
		IDScope:        testScope,
		RegistrationID: "dev-1",
		SymmetricKey:   testKey,
		RootCAs:        f.roots,
		Now:            clk.Now,
		Sleep:          clk.Sleep,
		Jitter:         func() float64 { return 0 },
	}
}
