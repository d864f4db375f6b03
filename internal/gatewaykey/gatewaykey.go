package gatewaykey

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hpke"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zdps/zdps/pkg/dps"
)

// ErrKey: the key is not an ECDSA/ECDH P-256 key.
var ErrKey = errors.New("gatewaykey: not a P-256 key")

// ErrOpen: a sealed key does not open (another key, another document or
// field, or altered).
var ErrOpen = errors.New("gatewaykey: sealed key does not open")

// Fields are the key fields of attestation.symmetricKey that are sealed.
var Fields = []string{"primaryKey", "secondaryKey"}

func suite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.AES128GCM() }

// AAD is the additional data binding a sealed key to its place.
func AAD(kind, id, field string) string { return kind + "/" + id + "/" + field }

// Recipient is the gateway's public key, ready to seal to.
type Recipient struct{ pk hpke.PublicKey }

// NewRecipient converts an ECDSA P-256 public key (a TLS client
// certificate's) for HPKE.
func NewRecipient(pub any) (*Recipient, error) {
	var k *ecdh.PublicKey
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		ek, err := p.ECDH()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKey, err)
		}
		k = ek
	case *ecdh.PublicKey:
		k = p
	default:
		return nil, fmt.Errorf("%w: %T", ErrKey, pub)
	}
	if k.Curve() != ecdh.P256() {
		return nil, ErrKey
	}
	pk, err := hpke.NewDHKEMPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	return &Recipient{pk: pk}, nil
}

// Seal encrypts plaintext to r, bound to aad.
func (r *Recipient) Seal(aad string, plaintext []byte) (dps.SealedKey, error) {
	kdf, aead := suite()
	enc, s, err := hpke.NewSender(r.pk, kdf, aead, []byte(dps.GatewayKeyInfo))
	if err != nil {
		return dps.SealedKey{}, fmt.Errorf("gatewaykey: seal: %w", err)
	}
	ct, err := s.Seal([]byte(aad), plaintext)
	if err != nil {
		return dps.SealedKey{}, fmt.Errorf("gatewaykey: seal: %w", err)
	}
	return dps.SealedKey{Enc: base64.StdEncoding.EncodeToString(enc), CT: base64.StdEncoding.EncodeToString(ct)}, nil
}

// Opener is the gateway's private key (an *ecdh.PrivateKey, or a key in a
// TPM behind ecdh.KeyExchanger).
type Opener struct{ sk hpke.PrivateKey }

// NewOpener converts the gateway's private key: an *ecdsa.PrivateKey, an
// *ecdh.PrivateKey or any ecdh.KeyExchanger on P-256.
func NewOpener(priv any) (*Opener, error) {
	var kx ecdh.KeyExchanger
	switch p := priv.(type) {
	case *ecdsa.PrivateKey:
		k, err := p.ECDH()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKey, err)
		}
		kx = k
	case ecdh.KeyExchanger:
		kx = p
	default:
		return nil, fmt.Errorf("%w: %T", ErrKey, priv)
	}
	if kx.Curve() != ecdh.P256() {
		return nil, ErrKey
	}
	sk, err := hpke.NewDHKEMPrivateKey(kx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKey, err)
	}
	return &Opener{sk: sk}, nil
}

// Open decrypts k, which must have been sealed bound to aad.
func (o *Opener) Open(aad string, k dps.SealedKey) ([]byte, error) {
	enc, err := base64.StdEncoding.DecodeString(k.Enc)
	if err != nil {
		return nil, fmt.Errorf("%w: enc: %w", ErrOpen, err)
	}
	ct, err := base64.StdEncoding.DecodeString(k.CT)
	if err != nil {
		return nil, fmt.Errorf("%w: ct: %w", ErrOpen, err)
	}
	kdf, aead := suite()
	r, err := hpke.NewRecipient(enc, o.sk, kdf, aead, []byte(dps.GatewayKeyInfo))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOpen, err)
	}
	pt, err := r.Open([]byte(aad), ct)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOpen, err)
	}
	return pt, nil
}

// SealDocument replaces attestation.symmetricKey.primaryKey and
// secondaryKey of an enrollment or group document (wire JSON) by their
// dps.SealedKey, bound to kind and id. A document without them is
// returned unchanged.
func (r *Recipient) SealDocument(doc json.RawMessage, kind, id string) (json.RawMessage, error) {
	return walkKeys(doc, func(field string, v json.RawMessage) (any, error) {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("gatewaykey: %s is not a string", field)
		}
		return r.Seal(AAD(kind, id, field), []byte(s))
	})
}

// OpenDocument is SealDocument's inverse, for the gateway.
func (o *Opener) OpenDocument(doc json.RawMessage, kind, id string) (json.RawMessage, error) {
	return walkKeys(doc, func(field string, v json.RawMessage) (any, error) {
		var k dps.SealedKey
		if err := json.Unmarshal(v, &k); err != nil {
			return nil, fmt.Errorf("%w: %s is not a sealed key", ErrOpen, field)
		}
		pt, err := o.Open(AAD(kind, id, field), k)
		if err != nil {
			return nil, err
		}
		return string(pt), nil
	})
}

// walkKeys rewrites the key fields of doc's attestation.symmetricKey
// through f, keeping every other member as it is (key order aside).
func walkKeys(doc json.RawMessage, f func(field string, v json.RawMessage) (any, error)) (json.RawMessage, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, fmt.Errorf("gatewaykey: document: %w", err)
	}
	var att map[string]json.RawMessage
	if raw, ok := top["attestation"]; !ok || json.Unmarshal(raw, &att) != nil || att == nil {
		return doc, nil
	}
	var sk map[string]json.RawMessage
	if raw, ok := att["symmetricKey"]; !ok || json.Unmarshal(raw, &sk) != nil || sk == nil {
		return doc, nil
	}
	changed := false
	for _, field := range Fields {
		v, ok := sk[field]
		if !ok || string(v) == "null" {
			continue
		}
		nv, err := f(field, v)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(nv)
		if err != nil {
			return nil, err
		}
		sk[field], changed = b, true
	}
	if !changed {
		return doc, nil
	}
	var err error
	if att["symmetricKey"], err = json.Marshal(sk); err != nil {
		return nil, err
	}
	if top["attestation"], err = json.Marshal(att); err != nil {
		return nil, err
	}
	return json.Marshal(top)
}
