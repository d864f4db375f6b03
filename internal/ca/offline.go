package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"time"

	"go.step.sm/crypto/keyutil"

	"github.com/zdps/zdps/internal/ca/castate"
)

// SignIntermediate signs an issuing intermediate for the key and subject of
// csrDER with an offline root: `zdps ca sign-intermediate`, run where the
// root key is, never on the server. The certificate has the profile of
// every zdps intermediate (CA, path length 0, keyCertSign and cRLSign,
// clientAuth and serverAuth) whatever the CSR asks; only its public key and
// subject are taken. validity zero means DefaultIntermediateValidity; it is
// capped at the root's NotAfter.
func SignIntermediate(root *x509.Certificate, rootKey crypto.Signer, csrDER []byte, validity time.Duration, now time.Time) (*x509.Certificate, error) {
	if err := keyutil.VerifyPair(root.PublicKey, rootKey); err != nil {
		return nil, fmt.Errorf("%w: the root key does not match the root certificate", ErrInvalidCA)
	}
	if !root.BasicConstraintsValid || !root.IsCA {
		return nil, fmt.Errorf("%w: the root is not a CA certificate", ErrInvalidCA)
	}
	csr, err := parseCSR(csrDER)
	if err != nil {
		return nil, err
	}
	if err := checkCAKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCSRKey, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCSRSignature, err)
	}
	if csr.Subject.CommonName == "" {
		return nil, fmt.Errorf("%w: the intermediate's CSR has no common name", ErrCSRSubject)
	}
	if validity < 0 {
		return nil, fmt.Errorf("%w: negative validity", ErrInvalidConfig)
	}
	if validity == 0 {
		validity = DefaultIntermediateValidity
	}
	na := castate.MinTime(now.Add(validity), root.NotAfter)
	if !na.After(now) {
		return nil, fmt.Errorf("%w: the root expired at %s", ErrCAExpired, root.NotAfter)
	}
	serial, err := castate.RandomSerial(rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := castate.IntermediateTemplate(serial, csr.Subject, now.Add(-time.Minute), na)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, csr.PublicKey, rootKey)
	if err != nil {
		return nil, fmt.Errorf("ca: sign intermediate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	if err := castate.CheckChain(root, cert); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCA, err)
	}
	return cert, nil
}
