package manage

import "github.com/zdps/zdps/pkg/enrollment"

// keyPair is the pair of symmetric keys of an attestation or policy.
type keyPair struct{ primary, secondary string }

// merge picks each key from the request, else the stored document, else the
// freshly generated one: empty keys on update keep the stored keys, empty
// keys on create are generated.
func merge(req, old, gen keyPair) keyPair {
	first := func(vs ...string) string {
		for _, v := range vs {
			if v != "" {
				return v
			}
		}
		return ""
	}
	return keyPair{
		primary:   first(req.primary, old.primary, gen.primary),
		secondary: first(req.secondary, old.secondary, gen.secondary),
	}
}

func attKeys(m *enrollment.AttestationMechanism) keyPair {
	if m == nil || m.Type != enrollment.AttestationSymmetricKey || m.SymmetricKey == nil {
		return keyPair{}
	}
	return keyPair{m.SymmetricKey.PrimaryKey, m.SymmetricKey.SecondaryKey}
}

func setAttKeys(m *enrollment.AttestationMechanism, k keyPair) {
	if m == nil || m.Type != enrollment.AttestationSymmetricKey {
		return
	}
	if m.SymmetricKey == nil {
		m.SymmetricKey = &enrollment.SymmetricKeyAttestation{}
	}
	m.SymmetricKey.PrimaryKey, m.SymmetricKey.SecondaryKey = k.primary, k.secondary
}
