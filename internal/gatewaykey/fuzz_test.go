package gatewaykey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"
)

// FuzzOpenDocument: a gateway opens whatever central's feed sends; a
// document either opens, or is refused, never panics, and a document
// without sealed keys is returned as it came.
func FuzzOpenDocument(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r, _ := NewRecipient(&k.PublicKey)
	sealed, _ := r.SealDocument(json.RawMessage(`{"registrationId":"d","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"a2V5"}}}`), "enrollment", "d")
	f.Add([]byte(sealed))
	f.Add([]byte(`{"attestation":{"symmetricKey":{"primaryKey":{"enc":"","ct":""}}}}`))
	f.Add([]byte(`{"attestation":{"symmetricKey":{"primaryKey":"plain"}}}`))
	f.Add([]byte(`{"attestation":null}`))
	o, _ := NewOpener(k)
	f.Fuzz(func(t *testing.T, doc []byte) {
		out, err := o.OpenDocument(doc, "enrollment", "d")
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("opened into invalid JSON: %s", out)
		}
	})
}
