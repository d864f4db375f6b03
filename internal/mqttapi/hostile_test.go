package mqttapi_test

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/zdps/zdps/internal/mqttapi"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/dps"
)

// TestConnectRefused: each bad CONNECT gets its CONNACK code and the
// connection ends.
func TestConnectRefused(t *testing.T) {
	srv := start(t)
	scope := srv.IDScope()
	regID := "refused-1"
	key := srv.SymmetricKeyEnrollment(regID)
	good := sasFor(key, scope, regID, "registration")
	other := sasFor([]byte("not the device key, 32 bytes long"), scope, regID, "registration")
	tests := []struct {
		name               string
		clientID, user, pw string
		want               byte
	}{
		{"wrong SAS", regID, userName(scope, regID), other, packets.ErrRefusedNotAuthorised},
		{"SAS for another scope", regID, userName(scope, regID), sasFor(key, "0ne00000000", regID, ""), packets.ErrRefusedNotAuthorised},
		{"wrong scope", regID, userName("0ne00000000", regID), good, packets.ErrRefusedNotAuthorised},
		{"no credential", regID, userName(scope, regID), "", packets.ErrRefusedNotAuthorised},
		{"bad user name", regID, "just-a-name", good, packets.ErrRefusedBadUsernameOrPassword},
		{"user name for another device", regID, userName(scope, "someone-else"), good, packets.ErrRefusedBadUsernameOrPassword},
		{"unsupported api-version", regID, scope + "/registrations/" + regID + "/api-version=1999-01-01", good, packets.ErrRefusedBadUsernameOrPassword},
		{"password not a SAS", regID, userName(scope, regID), "hunter2", packets.ErrRefusedBadUsernameOrPassword},
		{"invalid client ID", "bad id!", userName(scope, regID), good, packets.ErrRefusedIDRejected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, srv)
			c.write(t, &packets.ConnectPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Connect}, ProtocolName: "MQTT", ProtocolVersion: 4, CleanSession: true,
				ClientIdentifier: tc.clientID, UsernameFlag: true, Username: tc.user, PasswordFlag: tc.pw != "", Password: []byte(tc.pw), Keepalive: 30})
			ack, ok := c.read(t).(*packets.ConnackPacket)
			if !ok || ack.ReturnCode != tc.want || ack.SessionPresent {
				t.Fatalf("answer %v, want CONNACK %d", ack, tc.want)
			}
			c.closed(t)
		})
	}
	t.Run("protocol level 3", func(t *testing.T) {
		c := dialRaw(t, srv)
		c.write(t, &packets.ConnectPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Connect}, ProtocolName: "MQIsdp", ProtocolVersion: 3, CleanSession: true,
			ClientIdentifier: regID, UsernameFlag: true, Username: userName(scope, regID), PasswordFlag: true, Password: []byte(good)})
		if ack, ok := c.read(t).(*packets.ConnackPacket); !ok || ack.ReturnCode != packets.ErrRefusedBadProtocolVersion {
			t.Fatalf("answer %v, want CONNACK 1", ack)
		}
		c.closed(t)
	})
	// The server logs refusals without the password.
	if strings.Contains(srv.Logs(), good[len("SharedAccessSignature "):]) || strings.Contains(srv.Logs(), "hunter2") {
		t.Fatal("a password reached the log")
	}
}

// TestForbiddenPackets: after a good CONNECT, anything DPS does not serve
// closes the connection; a QoS 1 request is PUBACKed before its answer.
func TestForbiddenPackets(t *testing.T) {
	srv := start(t)
	scope := srv.IDScope()
	regID := "hostile-1"
	key := srv.SymmetricKeyEnrollment(regID)
	connected := func(t *testing.T) *rawConn {
		c := dialRaw(t, srv)
		c.write(t, &packets.ConnectPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Connect}, ProtocolName: "MQTT", ProtocolVersion: 4, CleanSession: true,
			ClientIdentifier: regID, UsernameFlag: true, Username: userName(scope, regID), PasswordFlag: true, Password: []byte(sasFor(key, scope, regID, "registration")), Keepalive: 60})
		if ack, ok := c.read(t).(*packets.ConnackPacket); !ok || ack.ReturnCode != 0 {
			t.Fatalf("CONNACK %v", ack)
		}
		return c
	}
	publish := func(topic string, qos byte) *packets.PublishPacket {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName, p.Qos, p.MessageID = topic, qos, 7
		return p
	}
	subscribe := func(filter string) *packets.SubscribePacket {
		p := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
		p.MessageID, p.Topics, p.Qoss = 3, []string{filter}, []byte{1}
		return p
	}

	t.Run("QoS 1 register is PUBACKed and answered at QoS 0", func(t *testing.T) {
		c := connected(t)
		c.write(t, subscribe(dps.MQTTResponseFilter))
		if ack, ok := c.read(t).(*packets.SubackPacket); !ok || ack.MessageID != 3 || len(ack.ReturnCodes) != 1 || ack.ReturnCodes[0] != 1 {
			t.Fatalf("SUBACK %v", ack)
		}
		c.write(t, publish("$dps/registrations/PUT/iotdps-register/?$rid=42", 1))
		if ack, ok := c.read(t).(*packets.PubackPacket); !ok || ack.MessageID != 7 {
			t.Fatalf("want PUBACK 7 first, got %v", ack)
		}
		ans, ok := c.read(t).(*packets.PublishPacket)
		if !ok || ans.Qos != 0 || ans.Retain || ans.TopicName != "$dps/registrations/res/200/?$rid=42" || !strings.Contains(string(ans.Payload), `"status":"assigned"`) {
			t.Fatalf("answer %v %s", ans, ans.Payload)
		}
		c.write(t, packets.NewControlPacket(packets.Pingreq))
		if _, ok := c.read(t).(*packets.PingrespPacket); !ok {
			t.Fatal("no PINGRESP")
		}
		c.write(t, packets.NewControlPacket(packets.Disconnect))
		c.closed(t)
	})
	t.Run("requests beyond the in-flight limit wait, none is lost", func(t *testing.T) {
		c := connected(t)
		const n = 10 // above DefaultMaxInFlight
		for i := 0; i < n; i++ {
			p := publish("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=r"+strconv.Itoa(i)+"&operationId=nope", 0)
			c.write(t, p)
		}
		seen := map[string]bool{}
		for i := 0; i < n; i++ {
			ans, ok := c.read(t).(*packets.PublishPacket)
			// 404 (no such operation) until the poll throttle (5/10s) answers 429.
			if !ok || !(strings.HasPrefix(ans.TopicName, "$dps/registrations/res/404/?$rid=r") || strings.HasPrefix(ans.TopicName, "$dps/registrations/res/429/?$rid=r")) {
				t.Fatalf("answer %v", ans)
			}
			rid := ans.TopicName[strings.Index(ans.TopicName, "$rid=")+5:]
			if i := strings.IndexByte(rid, '&'); i >= 0 {
				rid = rid[:i]
			}
			seen[rid] = true
		}
		if len(seen) != n {
			t.Fatalf("%d distinct answers of %d", len(seen), n)
		}
	})
	for _, tc := range []struct {
		name string
		p    packets.ControlPacket
	}{
		{"subscribe to another filter", subscribe("#")},
		{"subscribe to a request topic", subscribe("$dps/registrations/PUT/#")},
		{"publish to another topic", publish("devices/hostile-1/messages/events/", 0)},
		{"publish without $rid", publish("$dps/registrations/PUT/iotdps-register/?", 0)},
		{"publish with a wildcard $rid", publish("$dps/registrations/PUT/iotdps-register/?$rid=%23", 0)},
		{"poll without operationId", publish("$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1", 0)},
		{"publish at QoS 2", publish("$dps/registrations/PUT/iotdps-register/?$rid=1", 2)},
		{"second CONNECT", &packets.ConnectPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Connect}, ProtocolName: "MQTT", ProtocolVersion: 4, ClientIdentifier: regID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := connected(t)
			c.write(t, tc.p)
			c.closed(t)
		})
	}
	t.Run("oversized packet", func(t *testing.T) {
		c := connected(t)
		// PUBLISH announcing 200 MB: refused on the header alone.
		c.writeRaw(t, []byte{0x30, 0x80, 0x80, 0x80, 0x64})
		c.closed(t)
	})
	t.Run("packet just over the limit", func(t *testing.T) {
		c := connected(t)
		p := publish("$dps/registrations/PUT/iotdps-register/?$rid=1", 0)
		p.Payload = make([]byte, mqttapi.DefaultMaxPacketBytes)
		// The server closes while the packet is still coming: the write
		// may fail with a reset.
		_ = c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_ = p.Write(c.c)
		c.closed(t)
	})
	if !srv.LogContains("packet too large") || !srv.LogContains("publish forbidden") {
		t.Fatal("faults not logged")
	}
}

// TestSlowConnect: a device that opens TLS and sends no CONNECT within
// --mqtt-connect-timeout is closed.
func TestSlowConnect(t *testing.T) {
	srv := start(t, "--mqtt-connect-timeout", "1s")
	c := dialRaw(t, srv)
	start := time.Now()
	c.closed(t)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("closed after %v", d)
	}
	// A device that does not even finish TLS is closed too.
	raw, err := net.Dial("tcp", srv.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := raw.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("raw TCP without TLS: read %v, want EOF", err)
	}
}

// rawConn is an MQTT client written by hand, for what paho would refuse
// to send.
type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, srv *zdpstest.Server) *rawConn {
	t.Helper()
	c, err := tls.Dial("tcp", srv.MQTTAddr(), srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{c: c, r: bufio.NewReader(c)}
}

func (c *rawConn) write(t *testing.T, p packets.ControlPacket) {
	t.Helper()
	_ = c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := p.Write(c.c); err != nil {
		t.Fatal(err)
	}
}

func (c *rawConn) writeRaw(t *testing.T, b []byte) {
	t.Helper()
	if _, err := c.c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func (c *rawConn) read(t *testing.T) packets.ControlPacket {
	t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, err := mqttapi.ReadPacket(c.r, 1<<20)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return p
}

// closed asserts that the server closes the connection (EOF, or a reset
// when it closed with our data unread) within 10 s, sending nothing more.
func (c *rawConn) closed(t *testing.T) {
	t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := c.r.ReadByte()
	var ne net.Error
	switch {
	case err == nil:
		t.Fatalf("server sent 0x%02x instead of closing", b)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatal("connection still open after 10s")
	}
}

func tlsDialErr(srv *zdpstest.Server) (net.Conn, error) {
	return tls.Dial("tcp", srv.MQTTAddr(), srv.TLSConfig())
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
