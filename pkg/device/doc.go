// Package device is the device side of zdps (and Azure IoT Hub DPS)
// provisioning over HTTPS (docs/protocol.md#device-api-over-https) or MQTT
// (docs/protocol.md#device-api-over-mqtt): a device registers with its
// ID scope and registration ID, proves its identity with a symmetric key
// (its own, or one derived from a group key) or an X.509 client
// certificate, optionally sends a CSR, and learns its hub, device ID and
// operational certificate.
//
//	res, err := device.Register(ctx, device.Config{
//		Endpoint:       "dps.example.net",
//		IDScope:        "0ne00000001",
//		RegistrationID: "sensor-17",
//		SymmetricKey:   key,
//		GenerateKey:    true,
//	})
//
// Config.Transport picks the carrier: TransportHTTPS (the default),
// TransportMQTT (MQTT 3.1.1 over TLS, port 8883) or TransportMQTTWS (MQTT
// over a WebSocket, port 443). Both run the same registration: the same
// body, answers, polling, retries, Result and errors.
//
// # Protocol
//
//   - PUT /{idScope}/registrations/{id}/register?api-version=V with
//     {registrationId, payload, csr}; path segments are percent-encoded
//     (upper-case hex, ':' included). api-version is CSRAPIVersion when a
//     CSR is sent, DefaultAPIVersion otherwise, unless Config.APIVersion
//     says otherwise.
//   - Symmetric key: Authorization: SharedAccessSignature
//     sr={idScope}%2Fregistrations%2F{id}&sig=..&se=..&skn=registration.
//     sr is URL-encoded and signed in its encoded form, as the C SDK and
//     the Node TPM path do; zdps and Azure accept it. A token lives
//     Config.TokenTTL and is rebuilt for every request.
//   - X.509: the certificate (leaf plus intermediates) is presented in the
//     TLS handshake whenever the server asks; no Authorization header.
//   - TPM (Config.TPM, e.g. OpenTPM("/dev/tpmrm0")): the first PUT
//     carries tpm{endorsementKey, storageRootKey} and no Authorization; the
//     401 answer's authenticationKey is activated in the TPM
//     (ActivateCredential with the EK, Import under the SRK, persisted at
//     0x81000100, as the Azure SDKs do); the PUT is repeated, and polls
//     sent, with a SAS whose sig is TPM2_HMAC with that key; the assigned
//     answer's registrationState.tpm.authenticationKey is activated the
//     same way. The registration ID defaults to the EK's (docs/protocol.md#tpm-challenge).
//   - 200 "assigned" ends the registration; 202, or 200 "assigning",
//     polls GET .../operations/{operationId} after Retry-After (integer
//     seconds; missing, 0, a date or over 300 means 1 s, as the C SDK).
//     "failed" and "disabled" end it with an *Error.
//   - 429, every 5xx and network errors are retried after Retry-After,
//     else exponential backoff with jitter (1 s doubling to 60 s), at most
//     Config.MaxRetries times in a row; the whole registration is bounded
//     by Config.MaxWait and the context. Other statuses are final
//     (*Error). TLS trust failures are final.
//   - One http.Client with one kept-alive connection serves the whole
//     registration (the C SDK does the same; zdps keeps it open longer
//     than any Retry-After).
//
// # MQTT
//
//   - One connection per registration, on ssl://host:8883 or
//     wss://host:443/$iothub/websocket (subprotocol mqtt), closed with
//     DISCONNECT by Close. CONNECT: MQTT 3.1.1, clean session, client ID
//     the registration ID, user name
//     {idScope}/registrations/{id}/api-version=V&ClientVersion={UserAgent},
//     password the same SAS as the HTTPS Authorization (none with X.509:
//     the certificate is presented in the TLS handshake). TPM is refused
//     with ErrInvalidConfig, as Azure offers it over HTTPS only.
//   - SUBSCRIBE to dps.MQTTResponseFilter at QoS 1; each request is a
//     QoS 0 PUBLISH (as Azure's C SDKs: the answer is the acknowledgement)
//     to its dps.MQTTRequest topic with the same body as over HTTPS; $rid
//     counts 1, 2, ... per connection, and the dps.MQTTResponse topic of
//     the answer gives its HTTP status and Retry-After.
//   - A refused CONNECT is an *Error as the HTTP status would be: CONNACK
//     4 and 5 are 401 (ErrUnauthorized), 1 and 2 are 400, 3 is 503 and
//     retried. A connection lost before the answer is a network error:
//     retried on a new connection. Each request waits at most
//     Config.RequestTimeout for its answer.
//
// # Security contract
//
//   - Keys, tokens and private keys are never logged or put in errors.
//   - The service is authenticated by TLS against Config.RootCAs (or the
//     system roots); redirects are not followed.
//   - With GenerateKey, or with a CSR, the issued leaf must certify the
//     CSR's public key, or Register fails with ErrMalformedResponse. The
//     chain is parsed but not verified: the caller verifies it against
//     the trust anchor it expects (for zdps, the instance's CA bundle)
//     before relying on it.
//
// The package depends on the standard library, paho.mqtt.golang (the MQTT
// client), pkg/dps (the wire
// contract: the register body, API versions, the TPM registration ID and
// activation-blob framing), pkg/enrollment (status names, registration ID
// rules), pkg/sas, and for TPM on go-tpm: no server code.
package device
