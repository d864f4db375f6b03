package enrollment

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

// GeneratedKeyBytes is the size of keys zdps generates, as DPS does.
const GeneratedKeyBytes = 64

func generateKey(rand io.Reader) (string, error) {
	b := make([]byte, GeneratedKeyBytes)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", fmt.Errorf("generating key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

func fillKeys(rand io.Reader, keys ...*string) error {
	for _, k := range keys {
		if *k != "" {
			continue
		}
		v, err := generateKey(rand)
		if err != nil {
			return err
		}
		*k = v
	}
	return nil
}

func (a *AttestationMechanism) generateMissingKeys(rand io.Reader) error {
	if a == nil || a.Type != AttestationSymmetricKey {
		return nil
	}
	if a.SymmetricKey == nil {
		a.SymmetricKey = &SymmetricKeyAttestation{}
	}
	return fillKeys(rand, &a.SymmetricKey.PrimaryKey, &a.SymmetricKey.SecondaryKey)
}

// GenerateMissingKeys fills empty primary and secondary symmetric keys with
// 64 random bytes (base64) read from rand (crypto/rand.Reader in
// production). It does nothing for other attestation types.
func (s *Spec) GenerateMissingKeys(rand io.Reader) error {
	return s.Attestation.generateMissingKeys(rand)
}

// GenerateMissingKeys fills the policy's empty keys with 64 random bytes.
func (p *SharedAccessPolicy) GenerateMissingKeys(rand io.Reader) error {
	return fillKeys(rand, &p.PrimaryKey, &p.SecondaryKey)
}

// SymmetricKeys returns the decoded primary and secondary symmetric keys of
// a symmetricKey attestation, skipping absent or undecodable ones; nil for
// other attestation types. Callers compare with hmac.Equal.
func (a *AttestationMechanism) SymmetricKeys() [][]byte {
	if a == nil || a.Type != AttestationSymmetricKey || a.SymmetricKey == nil {
		return nil
	}
	var out [][]byte
	for _, s := range []string{a.SymmetricKey.PrimaryKey, a.SymmetricKey.SecondaryKey} {
		if s == "" {
			continue
		}
		if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) > 0 {
			out = append(out, k)
		}
	}
	return out
}

// Keys returns the decoded primary and secondary keys of the policy,
// skipping absent or undecodable ones.
func (p *SharedAccessPolicy) Keys() [][]byte {
	var out [][]byte
	for _, s := range []string{p.PrimaryKey, p.SecondaryKey} {
		if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) > 0 {
			out = append(out, k)
		}
	}
	return out
}

// Enabled reports whether the enrollment may provision (absent status means
// enabled).
func (s *Spec) Enabled() bool { return s.ProvisioningStatus != StatusDisabled }

// Reprovision returns the reprovision policy with the DPS defaults (both
// true) applied when it is absent.
func (s *Spec) Reprovision() ReprovisionPolicy {
	if s.ReprovisionPolicy == nil {
		return ReprovisionPolicy{UpdateHubAssignment: true, MigrateDeviceData: true}
	}
	return *s.ReprovisionPolicy
}

// Clone returns a deep copy, so a cached or stored value is never shared
// with code that mutates it.
func (e *IndividualEnrollment) Clone() *IndividualEnrollment {
	if e == nil {
		return nil
	}
	c := *e
	c.Versioned = e.Versioned.clone()
	if e.RegistrationState != nil {
		rs := *e.RegistrationState
		rs.CreatedDateTimeUTC = clonePtr(rs.CreatedDateTimeUTC)
		rs.LastUpdatedDateTimeUTC = clonePtr(rs.LastUpdatedDateTimeUTC)
		rs.DICE = rs.DICE.Clone()
		c.RegistrationState = &rs
	}
	c.Spec = e.Spec.clone()
	return &c
}

// Clone returns a deep copy of the group.
func (g *EnrollmentGroup) Clone() *EnrollmentGroup {
	if g == nil {
		return nil
	}
	c := *g
	c.Versioned = g.Versioned.clone()
	c.Spec = g.Spec.clone()
	return &c
}

// clone is a deep copy of the shared fields.
func (s Spec) clone() Spec {
	c := s
	c.Attestation = s.Attestation.clone()
	c.Capabilities = clonePtr(s.Capabilities)
	c.InitialTwin = s.InitialTwin.clone()
	c.ReprovisionPolicy = clonePtr(s.ReprovisionPolicy)
	c.IoTHubs = slices.Clone(s.IoTHubs)
	c.CustomAllocationDefinition = clonePtr(s.CustomAllocationDefinition)
	c.FirmwarePolicy = s.FirmwarePolicy.Clone()
	return c
}

// Redacted returns a deep copy fit for a GET answer: no symmetric keys
// (symmetricKey stays as an empty object, so clients that read
// attestation.symmetricKey find it), and X.509 certificates replaced by
// their info, as DPS answers. TPM endorsement and storage root keys are
// public keys and stay. Keys are only served by the attestationmechanism
// call.
func (e *IndividualEnrollment) Redacted() *IndividualEnrollment {
	c := e.Clone()
	if c != nil {
		c.Attestation.redact()
	}
	return c
}

// Redacted is IndividualEnrollment.Redacted for groups.
func (g *EnrollmentGroup) Redacted() *EnrollmentGroup {
	c := g.Clone()
	if c != nil {
		c.Attestation.redact()
	}
	return c
}

// Redacted returns a copy of the policy without its keys.
func (p *SharedAccessPolicy) Redacted() *SharedAccessPolicy {
	if p == nil {
		return nil
	}
	c := *p
	c.Versioned = p.Versioned.clone()
	c.PrimaryKey, c.SecondaryKey = "", ""
	return &c
}

func (a *AttestationMechanism) redact() {
	if a == nil {
		return
	}
	if a.SymmetricKey != nil {
		a.SymmetricKey = &SymmetricKeyAttestation{}
	}
	if a.X509 != nil {
		for _, cs := range []*X509Certificates{a.X509.ClientCertificates, a.X509.SigningCertificates} {
			if cs == nil {
				continue
			}
			for _, c := range []*X509CertificateWithInfo{cs.Primary, cs.Secondary} {
				if c == nil {
					continue
				}
				if c.Info == nil && c.Certificate != "" {
					if cert, err := ParseCertificate(c.Certificate); err == nil {
						c.Info = CertificateInfo(cert)
					}
				}
				c.Certificate = ""
			}
		}
	}
}

func (v Versioned) clone() Versioned {
	v.CreatedDateTimeUTC = clonePtr(v.CreatedDateTimeUTC)
	v.LastUpdatedDateTimeUTC = clonePtr(v.LastUpdatedDateTimeUTC)
	return v
}

func cloneTime[T any](p *T) *T { return clonePtr(p) }

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	c := *p
	return &c
}

func (a *AttestationMechanism) clone() *AttestationMechanism {
	if a == nil {
		return nil
	}
	c := *a
	c.TPM = clonePtr(a.TPM)
	c.SymmetricKey = clonePtr(a.SymmetricKey)
	if a.X509 != nil {
		x := X509Attestation{
			ClientCertificates:  a.X509.ClientCertificates.clone(),
			SigningCertificates: a.X509.SigningCertificates.clone(),
			CAReferences:        clonePtr(a.X509.CAReferences),
		}
		c.X509 = &x
	}
	return &c
}

func (cs *X509Certificates) clone() *X509Certificates {
	if cs == nil {
		return nil
	}
	return &X509Certificates{Primary: cs.Primary.clone(), Secondary: cs.Secondary.clone()}
}

func (c *X509CertificateWithInfo) clone() *X509CertificateWithInfo {
	if c == nil {
		return nil
	}
	return &X509CertificateWithInfo{Certificate: c.Certificate, Info: clonePtr(c.Info)}
}

func (t *InitialTwin) clone() *InitialTwin {
	if t == nil {
		return nil
	}
	c := InitialTwin{Tags: cloneRaw(t.Tags)}
	if t.Properties != nil {
		c.Properties = &InitialTwinProperties{Desired: cloneRaw(t.Properties.Desired)}
	}
	return &c
}

func cloneRaw(m json.RawMessage) json.RawMessage {
	if m == nil {
		return nil
	}
	return slices.Clone(m)
}
