// Package webhooksig signs the requests zdps sends to webhooks (custom
// allocation, the audit export) and lets a receiver written in Go check
// them: X-Zdps-Timestamp is the Unix time of sending, X-Zdps-Signature
// "v1=" and the lower-case hex HMAC-SHA256 under the shared secret of
// the timestamp, ".", and the body. Standard library only.
package webhooksig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Header names of the signature.
const (
	HeaderTimestamp = "X-Zdps-Timestamp"
	HeaderSignature = "X-Zdps-Signature"
)

// Sign is the X-Zdps-Signature value for body sent at ts (unix seconds).
func Sign(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// ErrBadSignature is Verify's refusal.
var ErrBadSignature = errors.New("webhook: bad signature")

// Verify checks a request's signature headers against body, for webhooks
// written in Go: the timestamp must be within tolerance of now and the
// signature must match (constant-time).
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: no or malformed %s", ErrBadSignature, HeaderTimestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp outside the tolerance", ErrBadSignature)
	}
	if !hmac.Equal([]byte(h.Get(HeaderSignature)), []byte(Sign(secret, ts, body))) {
		return fmt.Errorf("%w: signature mismatch", ErrBadSignature)
	}
	return nil
}
