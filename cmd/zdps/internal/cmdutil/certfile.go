package cmdutil

import (
	"encoding/base64"
	"encoding/pem"
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
