// Package devicewire is what the device API answers, whatever the
// transport (HTTPS in internal/deviceapi, MQTT in internal/mqttapi): the
// answer types and how stored records render into them, the one mapping
// from pipeline errors to an HTTP status, a DPS errorCode and the message
// a device reads (Classify), the register body's decoding into a
// port.Request (DecodeRegister) and Retry-After seconds.
//
// Both transports answer the same JSON with the same status codes; only
// the framing differs (HTTP status line and headers, or the MQTT response
// topic's status and retry-after).
package devicewire
