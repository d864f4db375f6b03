package cmdutil

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/zdps/zdps/pkg/enrollment"
)

// ReadCertificateText loads a PEM or DER certificate file as the API
// takes it (PEM, or base64 DER) without parsing the certificate: TPM EK
// certificates need the server's tolerant parser.
func ReadCertificateText(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", Errorf(err, "certificate: %v", err)
	}
	s := string(b)
	if block, _ := pem.Decode(b); block == nil {
		s = base64.StdEncoding.EncodeToString(b) // DER
	}
	if _, err := enrollment.CertificateDER(s); err != nil {
		return "", Errorf(err, "certificate %s: %v", path, err)
	}
	return s, nil
}

// ErrNoPEMCertificate: a PEM text holds no CERTIFICATE block.
var ErrNoPEMCertificate = errors.New("no PEM certificate")

// ParsePEMCertificates parses every CERTIFICATE block of b, in order,
// skipping other blocks; a block that does not parse fails with its
// number (from 1).
func ParsePEMCertificates(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, ErrNoPEMCertificate
	}
	return out, nil
}
