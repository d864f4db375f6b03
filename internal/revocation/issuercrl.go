package revocation

import (
	"context"
	"fmt"
	"math/big"
	"sync"

	"github.com/zdps/zdps/pkg/enrollment"
)

// IssuerCRLs signs the CRLs of intermediates rotated out of issuing (zdps ca
// rotate keeps each one's CRL signed until its last certificate expires).
// Each lists the same revoked serials as the current CRL, with the current
// CRL's number, so it is signed again only when that CRL is: never per
// request. Certificates a given intermediate did not issue on its CRL are
// harmless (serials are random 128-bit numbers).
type IssuerCRLs struct {
	pub *CRLPublisher

	mu    sync.Mutex
	cache map[string]issuerCRL // by the caller's name of the issuer
}

type issuerCRL struct {
	number int64
	der    []byte
}

// NewIssuerCRLs signs CRLs alongside pub's.
func NewIssuerCRLs(pub *CRLPublisher) *IssuerCRLs {
	return &IssuerCRLs{pub: pub, cache: map[string]issuerCRL{}}
}

// CRL returns the CRL signed by signer, which name identifies (the
// issuer's thumbprint).
func (c *IssuerCRLs) CRL(ctx context.Context, name string, signer CRLSigner) ([]byte, error) {
	// The current CRL first: it moves the number on when the revoked set
	// changed or it aged.
	if _, err := c.pub.CRL(ctx); err != nil {
		return nil, err
	}
	st, err := c.pub.state(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if got, ok := c.cache[name]; ok && got.number == st.Number {
		return got.der, nil
	}
	now := c.pub.rev.now()
	var entries []Entry
	err = c.pub.rev.Revoked(ctx, func(cert *enrollment.Certificate) error {
		if onCRL(cert, now, c.pub.validity) {
			entries = append(entries, Entry{Serial: cert.Serial, RevokedAt: *cert.RevokedAt, Reason: cert.RevocationReason})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	der, err := signer.CRL(entries, big.NewInt(st.Number), c.pub.validity)
	if err != nil {
		return nil, fmt.Errorf("revocation: sign CRL of %s: %w", name, err)
	}
	c.cache[name] = issuerCRL{number: st.Number, der: der}
	return der, nil
}
