// Package deviceapi serves the Azure IoT Hub DPS device API over HTTPS
// (docs/protocol.md#device-api-over-https) on top of the provisioning pipeline:
//
//	PUT  /{idScope}/registrations/{registrationId}/register?api-version=V
//	GET  /{idScope}/registrations/{registrationId}/operations/{operationId}?api-version=V
//	POST /{idScope}/registrations/{registrationId}?api-version=V   (status lookup)
//
// It is mounted on the service API's router (cmd/zdps calls internal/api's
// (*API).Mount with (*API).Routes) or serves alone (Handler).
//
// # Answers
//
//   - register: 200 RegistrationOperationStatus with the final result
//     (assigned, failed or disabled), which both SDKs accept without
//     polling; with Config.AzureCompatible202, or while the pipeline is
//     still assigning (a slow custom allocation webhook outlasting the
//     pipeline's AssignWait), 202 {operationId, status:"assigning"} with an
//     integer Retry-After and a Location of the operation.
//   - an operation still assigning after its deadline (the replica running
//     it died) is a 200 with status "failed", errorCode 408001 and
//     errorMessage "assignment did not complete in time; register again".
//   - a register while another registration of the device is assigning:
//     the same request gets the running operation again (202), another
//     one 429/429001 with Retry-After.
//   - a failed registration (allocation failed) is a 200 with status
//     "failed", the operationId and registrationState.errorCode 400209 and
//     errorMessage: the C SDK reports the errorCode only in that shape.
//   - a disabled enrollment is a 200 with status "disabled".
//   - operation poll: 202 + Retry-After while assigning, 200 when terminal.
//   - status lookup: 200 DeviceRegistrationResult, never a certificate.
//   - refusals use the DPS error format {errorCode, trackingId, message,
//     info, timestampUtc} with x-ms-error-code (classify is the one
//     mapping): 400/400004 bad input (unknown api-version, body not a
//     DeviceRegistration, registrationId of body and path differ, bad CSR),
//     401/401002 authentication failed or no enrollment, 404/404201 unknown
//     ID scope, operation (another device's included) or registration,
//     413/413004 body too large, 429/429001 throttled (with Retry-After),
//     5xx for server faults (never 4xx). Client faults are always below
//     429, so devices do not retry them forever.
//   - body faults are the device's: a body cut short of its
//     Content-Length or last chunk, an unreadable one (bad chunking, a
//     reset), one stalled longer than Config.BodyTimeout (10 s), a device
//     that closed its side before the answer, a malformed
//     DeviceRegistration and a payload over Config.MaxPayloadBytes (80
//     KiB) all answer 400/400004; the first four with Connection: close,
//     because the connection's framing is lost. They are logged at INFO,
//     at most a few lines a minute per kind (internal/ratelog), never as
//     ERROR: anyone can send them.
//
// Every JSON answer carries Content-Type: application/json; charset=utf-8.
// Status strings are the lower camel constants of pkg/enrollment.
//
// # Security contract
//
//   - Every route authenticates the device through the pipeline (SAS in
//     Authorization, TLS client certificate, TPM); an operation is answered
//     only to the device it belongs to.
//   - Bodies are limited (Config.MaxBodyBytes, 96 KiB by default, as Azure;
//     payloads to Config.MaxPayloadBytes, and the body limit always leaves
//     BodyRoom for a CSR beside a payload at its limit), must arrive
//     within Config.BodyTimeout, and are decoded strictly into request types separate from stored models
//     (DecodeDeviceRegistration): unknown fields, trailing data, a body
//     registrationId other than the path's and non-base64 CSRs are refused.
//   - Path segments are percent-decoded (the C SDK sends lower-case hex)
//     and validated before use.
//   - The Authorization header, keys, CSRs and payloads are never logged;
//     401 answers never say why; server faults answer a generic message
//     and the tracking ID, details go to the log only.
package deviceapi
