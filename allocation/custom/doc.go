// Package custom is the DPS "custom" allocation policy: zdps POSTs the
// device's context to the enrollment's webhook (customAllocationDefinition
// .webhookUrl) on every registration and assigns the hub it answers.
//
// # Wire contract (docs/protocol.md#custom-allocation-webhook)
//
// Request, Content-Type application/json:
//
//	{"individualEnrollment": {...} | "enrollmentGroup": {...},
//	 "deviceRuntimeContext": {"registrationId": "...",
//	   "currentIotHubHostName": "...", "currentDeviceId": "...",
//	   "symmetricKey": {} | "x509": {} | "tpm": {}, "payload": {...}},
//	 "linkedHubs": ["hub1.example.com", ...]}
//
// The enrollment is sent without keys (as GET answers it); the current hub
// and device ID are absent at first registration; linkedHubs are the hubs
// eligible for this device. Response, 2xx with a JSON object:
//
//	{"iotHubHostName": "<one of linkedHubs>", "initialTwin": {...}, "payload": {...}}
//
// Unknown response fields are ignored; initialTwin must be an object when
// present; payload, any JSON, replaces the payload returned to the device.
//
// # Outcomes
//
// Every failure fails the registration (status failed, errorCode 400209)
// with a *WebhookError, whose message is the device's and the registration
// record's errorMessage:
//
//	timeout    no answer within Config.Timeout     "custom allocation webhook did not answer within 2s (3 attempts)"
//	status     a non-2xx answer                     "custom allocation webhook answered HTTP 500 (3 attempts)"
//	malformed  not a JSON object / bad field types  "custom allocation webhook answered malformed JSON: ..."
//	noHub      no iotHubHostName                    "custom allocation webhook answer has no iotHubHostName"
//	notLinked  a hub not in linkedHubs              "custom allocation webhook chose \"x\", which is not one of the linked hubs offered: a, b"
//	blocked    the URL resolves to a refused address "custom allocation webhook address 169.254.169.254 is refused (link-local or cloud metadata)..."
//	transport  connection refused, TLS failure...   "custom allocation webhook unreachable: ..."
//
// Timeouts, transport errors, 429 and 5xx are retried, Config.Retries
// times at most (default 2, so 3 attempts), with a doubling backoff from
// Config.RetryBackoff; other answers are final at once. Redirects are not
// followed (a 3xx is a non-2xx answer) and proxies from the environment
// are not used, so the address check below cannot be bypassed.
//
// # Signature
//
// With Config.Secret set, every request carries
//
//	X-Zdps-Timestamp: <unix seconds>
//	X-Zdps-Signature: v1=<lower-case hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// where body is the exact request body bytes. A webhook recomputes it
// (Verify does, in constant time) and rejects stale timestamps to stop
// replays.
//
// # Address policy (SSRF)
//
// The check runs at connect time, in the net.Dialer Control hook, on the
// address actually dialled, so DNS rebinding cannot slip past it.
// Refused by default: link-local 169.254.0.0/16 and fe80::/10 (this covers
// the AWS, GCP and Azure 169.254.169.254 metadata service), the Alibaba
// metadata address 100.100.100.200, AWS's IPv6 metadata fd00:ec2::254,
// Azure's wire server 168.63.129.16, unspecified (0.0.0.0/8, ::),
// multicast and broadcast. Loopback and private networks are allowed
// (webhooks often run beside zdps or inside the same private network, and
// the tests run one on 127.0.0.1). Config.AllowNetworks exempts prefixes
// from the refusal (`zdps serve --allocation-webhook-allow-cidr`).
// Policy.CheckURL runs the same check on a URL's literal address, and
// refuses metadata host names, when an enrollment is written; it resolves
// no names, so the connect-time check stays the authority.
package custom
