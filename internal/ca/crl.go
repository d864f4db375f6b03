package ca

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Revoked is one revoked certificate, as the caller keeps it in the store.
type Revoked struct {
	// Serial in hex as in Issued.Serial (case, leading zeros and colons
	// are ignored).
	Serial string
	// RevokedAt is when it was revoked.
	RevokedAt time.Time
	// Reason is an RFC 5280 CRLReason code: 0 (unspecified, then left out
	// of the CRL as RFC 5280 asks) to 10, except 7.
	Reason int
}

// DefaultCRLValidity is the NextUpdate distance when CRL is given zero.
const DefaultCRLValidity = 24 * time.Hour

// CRL returns a DER CRL listing revoked, signed by the intermediate (which
// issues every leaf, so it is the CRL issuer RFC 5280 expects). number must
// grow with every CRL the caller publishes (keep it in the store); nil uses
// the current Unix time in seconds, which grows as long as replica clocks
// agree. nextUpdate zero means DefaultCRLValidity.
func (c *CA) CRL(revoked []Revoked, number *big.Int, nextUpdate time.Duration) ([]byte, error) {
	g := c.cur.Load()
	return c.crl(g.Issuer, g.Signer, revoked, number, nextUpdate)
}

// PreviousCRL is CRL signed by inter, one of the rotated-out intermediates
// of Previous, for the certificates it issued, during its overlap.
func (c *CA) PreviousCRL(inter *x509.Certificate, revoked []Revoked, number *big.Int, nextUpdate time.Duration) ([]byte, error) {
	for _, p := range c.cur.Load().Previous {
		if !p.Inter.Equal(inter) {
			continue
		}
		if p.Signer == nil {
			return nil, fmt.Errorf("%w: the key of previous intermediate %s is in a %s KMS not given", ErrKMSRequired, inter.Subject, p.KMS)
		}
		return c.crl(p.Issuer, p.Signer, revoked, number, nextUpdate)
	}
	return nil, fmt.Errorf("%w: %s is not a previous intermediate of this CA", ErrInvalidRevocation, inter.Subject)
}

func (c *CA) crl(issuer *x509.Certificate, signer crypto.Signer, revoked []Revoked, number *big.Int, nextUpdate time.Duration) ([]byte, error) {
	if nextUpdate < 0 {
		return nil, fmt.Errorf("%w: negative nextUpdate", ErrInvalidRevocation)
	}
	if nextUpdate == 0 {
		nextUpdate = DefaultCRLValidity
	}
	now := c.now()
	if number == nil {
		number = big.NewInt(now.Unix())
	}
	if number.Sign() < 0 {
		return nil, fmt.Errorf("%w: negative CRL number", ErrInvalidRevocation)
	}
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for i, r := range revoked {
		s, ok := parseSerial(r.Serial)
		if !ok {
			return nil, fmt.Errorf("%w: entry %d: serial %q is not hex", ErrInvalidRevocation, i, r.Serial)
		}
		if r.Reason < 0 || r.Reason > 10 || r.Reason == 7 {
			return nil, fmt.Errorf("%w: entry %d: reason %d", ErrInvalidRevocation, i, r.Reason)
		}
		at := r.RevokedAt
		if at.IsZero() {
			return nil, fmt.Errorf("%w: entry %d: no revocation time", ErrInvalidRevocation, i)
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: at.UTC(), ReasonCode: r.Reason})
	}
	tmpl := &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                now,
		NextUpdate:                now.Add(nextUpdate),
		RevokedCertificateEntries: entries,
	}
	der, err := x509.CreateRevocationList(c.rand, tmpl, issuer, signer)
	if err != nil {
		return nil, fmt.Errorf("ca: create CRL: %w", err)
	}
	return der, nil
}

func parseSerial(s string) (*big.Int, bool) {
	s = strings.ReplaceAll(strings.TrimSpace(s), ":", "")
	if s == "" || len(s) > 40 || strings.HasPrefix(s, "-") || strings.HasPrefix(s, "+") {
		return nil, false
	}
	n, ok := new(big.Int).SetString(s, 16)
	if !ok || n.Sign() <= 0 {
		return nil, false
	}
	return n, true
}
