// Package pathcase lets a chi router match paths the way DPS clients
// write them: literal segments in any case, IDs percent-encoded in any
// case, with or without a trailing slash. The Node service SDK sends
// /enrollmentgroups/ and a trailing slash on the bulk call; the C SDK
// percent-encodes IDs with lower-case hex (docs/protocol.md#conventions).
// Routing itself stays chi's, and case-sensitive: the middleware rewrites
// the path chi routes on, so handlers get decoded IDs from URLParam.
package pathcase
