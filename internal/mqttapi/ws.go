package mqttapi

import (
	"context"
	"crypto/x509"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// WebSocketPath is where MQTT over WebSockets is served on the HTTPS
// listener, as Azure does.
const WebSocketPath = "/$iothub/websocket"

// ServeHTTP upgrades a request to a WebSocket carrying MQTT (subprotocol
// "mqtt", matched without regard to case: the C SDK asks for "MQTT") and
// serves it as a device connection. The TLS client certificate of the
// HTTPS connection authenticates an X.509 device.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !wantsMQTT(r) {
		http.Error(w, "a WebSocket with subprotocol mqtt is required", http.StatusBadRequest)
		return
	}
	// The HTTP server's read and write timeouts stay on a hijacked
	// connection: the session sets its own.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	wc, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"mqtt"}, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		s.fault(r.Context(), "websocket upgrade", r.RemoteAddr, err)
		return
	}
	// The request's context ends with the hijacked connection's handler;
	// the session's runs until the connection ends.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	c := websocket.NetConn(ctx, wc, websocket.MessageBinary)
	if !s.admitFrom(c, r.RemoteAddr) {
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	defer s.releaseFrom(c, r.RemoteAddr)
	var certs []*x509.Certificate
	if r.TLS != nil {
		certs = r.TLS.PeerCertificates
	}
	s.serveConn(ctx, c, "mqtt-ws", r.RemoteAddr, certs)
}

func wantsMQTT(r *http.Request) bool {
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "mqtt") {
				return true
			}
		}
	}
	return false
}
