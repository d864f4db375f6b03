package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/internal/provisioning/tpmatt"
	"github.com/zdps/zdps/internal/store"
)

// newTPMAttestor builds the TPM attestor; with --tpm-ek-roots EK
// certificates (the device's payload tpmEkCertificate, else the
// enrollment's) must chain to one of those manufacturer roots, and with
// --tpm-ek-required (the default) every TPM device needs one.
func newTPMAttestor(st *store.Store, ekRootsFile string, required bool) (*tpmatt.Attestor, error) {
	cfg := tpmatt.Config{Store: st}
	if ekRootsFile != "" {
		roots, inter, err := loadEKRoots(ekRootsFile)
		if err != nil {
			return nil, err
		}
		cfg.EKRoots, cfg.EKIntermediates, cfg.EKRequired = roots, inter, required
	}
	return tpmatt.New(cfg)
}

// loadEKRoots reads PEM certificates: self-signed ones are roots, the
// others intermediates (manufacturers publish both).
func loadEKRoots(file string) (roots, inter *x509.CertPool, err error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("--tpm-ek-roots: %w", err)
	}
	certs, err := cmdutil.ParsePEMCertificates(b)
	switch {
	case errors.Is(err, cmdutil.ErrNoPEMCertificate):
		return nil, nil, fmt.Errorf("--tpm-ek-roots: %s holds no PEM certificate", file)
	case err != nil:
		return nil, nil, fmt.Errorf("--tpm-ek-roots: %w", err)
	}
	roots, inter = x509.NewCertPool(), x509.NewCertPool()
	for _, c := range certs {
		if c.CheckSignatureFrom(c) == nil {
			roots.AddCert(c)
		} else {
			inter.AddCert(c)
		}
	}
	return roots, inter, nil
}
