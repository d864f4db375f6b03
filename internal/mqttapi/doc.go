// Package mqttapi serves the DPS device API over MQTT 3.1.1
// (docs/protocol.md#device-api-over-mqtt): on its own TLS listener (Serve,
// `zdps serve --mqtt-listen`) and over WebSockets on the HTTPS listener
// (ServeHTTP at WebSocketPath). It is not a broker: every connection is
// one device talking to the provisioning pipeline, and answers go to the
// requesting connection only.
//
// The codec is paho.mqtt.golang's packets package; ReadPacket reads the
// fixed header itself so that a packet above Config.MaxPacketBytes is
// refused before anything of it is allocated. The session layer is this
// package's:
//
//   - CONNECT within Config.ConnectTimeout (TLS handshake included);
//     protocol level 4 only; client ID = registration ID; the user name
//     {idScope}/registrations/{registrationId}/api-version={v}[&...]
//     (dps.ParseMQTTUserName); password = SAS, or none with a TLS client
//     certificate. The device is authenticated at CONNECT through the
//     pipeline (Provisioner.Authenticate) and refused with CONNACK 2, 4, 5
//     or 3 (store busy); no will, no stored session (session-present 0).
//     The connection's first register reuses that attestation (the
//     pipeline's Request.Attested: same credentials, within seconds, once);
//     every later request is attested again.
//   - The first request runs on the connection's goroutine, and a new one
//     reads on; later ones run on goroutines of their own. Either way the
//     reading goes on while requests run (pings, polls, DISCONNECT).
//   - SUBSCRIBE only to dps.MQTTResponseFilter (QoS ≤ 1 granted); PUBLISH only to
//     the register and poll topics (dps.ParseMQTTRequestTopic). Anything else, QoS
//     2 and retained publishes close the connection: 3.1.1 has no negative
//     PUBACK. QoS 1 requests are PUBACKed before their answer.
//   - Answers are PUBLISHed at QoS 0 to their dps.MQTTResponse topic with the same JSON,
//     statuses and Retry-After as HTTPS (internal/devicewire).
//   - Limits: connections in all and per source address, requests in
//     flight per connection (the next packet waits: TCP pushes back),
//     keep-alive at 1.5 × the client's value, an idle timeout after the
//     last answer, a write deadline on every write.
//
// Device faults are logged at INFO through internal/ratelog; passwords and
// SAS tokens never are.
package mqttapi
