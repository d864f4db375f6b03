package mqttapi_test

import (
	"bufio"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/zdps/zdps/internal/mqttapi"
)

// TestWebSocketSubprotocol: the C SDK asks for "MQTT", others for
// "mqtt": both are served; a WebSocket without it is refused.
func TestWebSocketSubprotocol(t *testing.T) {
	srv := start(t)
	scope := srv.IDScope()
	regID := "ws-case-1"
	key := srv.SymmetricKeyEnrollment(regID)
	url := "wss://" + srv.Addr() + mqttapi.WebSocketPath
	for _, proto := range []string{"MQTT", "mqtt"} {
		t.Run(proto, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			wc, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: srv.HTTPClient(), Subprotocols: []string{proto}})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Header.Get("Sec-WebSocket-Protocol") != proto {
				t.Fatalf("subprotocol %q, want %q", resp.Header.Get("Sec-WebSocket-Protocol"), proto)
			}
			c := websocket.NetConn(ctx, wc, websocket.MessageBinary)
			defer c.Close()
			p := &packets.ConnectPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Connect}, ProtocolName: "MQTT", ProtocolVersion: 4, CleanSession: true,
				ClientIdentifier: regID, UsernameFlag: true, Username: userName(scope, regID), PasswordFlag: true, Password: []byte(sasFor(key, scope, regID, "registration"))}
			if err := p.Write(c); err != nil {
				t.Fatal(err)
			}
			ack, err := mqttapi.ReadPacket(bufio.NewReader(c), 1024)
			if a, ok := ack.(*packets.ConnackPacket); err != nil || !ok || a.ReturnCode != 0 {
				t.Fatalf("CONNACK %v %v", ack, err)
			}
		})
	}
	t.Run("no subprotocol", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: srv.HTTPClient()})
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("dial without subprotocol: %v %v", resp, err)
		}
	})
}
