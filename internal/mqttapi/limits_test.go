package mqttapi_test

import (
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/zdps/zdps/internal/zdpstest"
)

// TestConnectionLimits: keep-alive is enforced at 1.5 × the client's
// value, an idle connection (no request running; PINGREQs do not count)
// is closed --mqtt-idle-timeout after its last answer, and a source
// address above --mqtt-max-connections-per-ip is refused.
func TestConnectionLimits(t *testing.T) {
	srv := start(t, "--mqtt-max-connections-per-ip", "3")
	idle := start(t, "--mqtt-idle-timeout", "3s")
	regID := "limits-1"
	keys := map[*zdpstest.Server][]byte{srv: srv.SymmetricKeyEnrollment(regID), idle: idle.SymmetricKeyEnrollment(regID)}
	connectTo := func(t *testing.T, srv *zdpstest.Server, keepAlive uint16) *rawConn {
		scope, key := srv.IDScope(), keys[srv]
		c := dialRaw(t, srv)
		c.write(t, &packets.ConnectPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Connect}, ProtocolName: "MQTT", ProtocolVersion: 4, CleanSession: true,
			ClientIdentifier: regID, UsernameFlag: true, Username: userName(scope, regID), PasswordFlag: true, Password: []byte(sasFor(key, scope, regID, "")), Keepalive: keepAlive})
		if ack, ok := c.read(t).(*packets.ConnackPacket); !ok || ack.ReturnCode != 0 {
			t.Fatalf("CONNACK %v", ack)
		}
		return c
	}
	connect := func(t *testing.T, keepAlive uint16) *rawConn { return connectTo(t, srv, keepAlive) }
	t.Run("keep-alive 1s closes after 1.5s of silence", func(t *testing.T) {
		c := connect(t, 1)
		// PINGREQs keep it open past the keep-alive.
		for i := 0; i < 3; i++ {
			time.Sleep(700 * time.Millisecond) // the device's own pace, not a wait for the server
			c.write(t, packets.NewControlPacket(packets.Pingreq))
			if _, ok := c.read(t).(*packets.PingrespPacket); !ok {
				t.Fatal("no PINGRESP")
			}
		}
		st := time.Now()
		c.closed(t)
		if d := time.Since(st); d < time.Second || d > 3*time.Second {
			t.Fatalf("closed %v after the last packet, want about 1.5s", d)
		}
	})
	t.Run("idle connection without keep-alive closes after the idle timeout", func(t *testing.T) {
		c := connectTo(t, idle, 0)
		st := time.Now()
		c.closed(t)
		if d := time.Since(st); d < 2*time.Second || d > 6*time.Second {
			t.Fatalf("closed after %v, want about 3s", d)
		}
	})
	t.Run("per-address limit", func(t *testing.T) {
		held := []*rawConn{dialRaw(t, srv), dialRaw(t, srv), dialRaw(t, srv)}
		_ = held
		c, err := tlsDialErr(srv)
		if err == nil {
			// The TLS client may finish its side before it sees the close.
			rc := &rawConn{c: c, r: bufioReader(c)}
			rc.closed(t)
		}
	})
}
