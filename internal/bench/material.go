package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"runtime"
	"time"

	"github.com/zdps/zdps/internal/softtpm"
	"github.com/zdps/zdps/pkg/device"
)

// simDevice is one simulated device's material, made before the timed
// phase.
type simDevice struct {
	regID string
	// key is the device's symmetric key (individual enrollments); nil for
	// groups (derived from the group key by pkg/device) and X.509.
	key []byte
	// cert is the device certificate and key (X.509).
	cert *tls.Certificate
	// csr is the pre-generated PKCS#10 request, when CSRs are sent and
	// pre-generated.
	csr []byte
	// tpm is the device's software TPM (TPM attestation).
	tpm *softtpm.TPM
	// endpoint is the device API it registers at (Config.Endpoints).
	endpoint string
}

// TPMKeyPool is how many endorsement keys a TPM run generates (RSA 2048,
// tens of milliseconds each); device i uses key i mod TPMKeyPool under
// its own registration ID, and all share one SRK. The service's work per
// registration is the same as with distinct keys.
const TPMKeyPool = 64

// newTPMs gives every device a software TPM.
func (r *runner) newTPMs(ctx context.Context) error {
	keys := make([]*rsa.PrivateKey, min(TPMKeyPool, len(r.devices))+1) // the last is the SRK
	if err := parallel(ctx, len(keys), func(i int) error {
		k, err := softtpm.GenerateKey()
		keys[i] = k
		return err
	}); err != nil {
		return fmt.Errorf("bench: TPM keys: %w", err)
	}
	srk := keys[len(keys)-1]
	for i := range r.devices {
		t, err := softtpm.New(keys[i%(len(keys)-1)], srk)
		if err != nil {
			return fmt.Errorf("bench: software TPM: %w", err)
		}
		r.devices[i].tpm = t
	}
	return nil
}

// testCA is the throwaway X.509 CA a run creates for its devices.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(name string, now time.Time) (*testCA, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"zdps bench"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &testCA{cert: c, key: k}, nil
}

func (ca *testCA) pem() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}))
}

// issue makes a device certificate for cn (the registration ID).
func (ca *testCA) issue(cn string, now time.Time) (*tls.Certificate, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, k.Public(), ca.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: leaf}, nil
}

func randSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120)) // never fails (crypto/rand)
	return n
}

// parallel runs fn(i) for i in [0, n) with one worker per CPU (for CPU
// work) and returns the first error.
func parallel(ctx context.Context, n int, fn func(i int) error) error {
	return parallelN(ctx, n, runtime.GOMAXPROCS(0), fn)
}

// prepare makes every device's certificate and CSR.
func (r *runner) prepare(ctx context.Context) error {
	now := r.cfg.Now()
	return parallel(ctx, len(r.devices), func(i int) error {
		d := &r.devices[i]
		if r.ca != nil {
			c, err := r.ca.issue(d.regID, now)
			if err != nil {
				return fmt.Errorf("bench: device certificate: %w", err)
			}
			d.cert = c
		}
		if r.cfg.CSR && !r.cfg.GenerateInline {
			k, err := device.GenerateKey()
			if err != nil {
				return err
			}
			if d.csr, err = device.GenerateCSR(d.regID, k); err != nil {
				return err
			}
		}
		return nil
	})
}
