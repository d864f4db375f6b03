// Package dps is the Azure Device Provisioning Service wire contract zdps
// implements, written once for every transport and client: the API
// versions, the error codes and the error body, the device's register
// request and its strict decoding, the SAS resource of a registration, the
// TPM registration-ID derivation, the framing of the TPM activation blob,
// and the zdps extension fields devices send. docs/protocol.md describes
// each.
//
// It imports only the standard library, so the device SDK, the service
// client, the HTTPS device API, the service API and the MQTT transport can
// all use it without pulling in anything of the server.
package dps
