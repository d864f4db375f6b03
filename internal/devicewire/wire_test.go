package devicewire_test

import (
	"encoding/base64"
	"encoding/pem"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/devicewire"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

func TestOperationStatusIn(t *testing.T) {
	chain := [][]byte{[]byte("leaf"), []byte("intermediate"), []byte("root")}
	op := &enrollment.Operation{OperationID: "op-1", RegistrationID: "dev-1", Status: enrollment.RegistrationAssigned,
		Registration: &enrollment.Registration{RegistrationID: "dev-1", Status: enrollment.RegistrationAssigned, AttestationType: enrollment.AttestationSymmetricKey}, IssuedCertificateChain: chain}
	pemOf := func(b []byte) string { return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b})) }
	tests := []struct {
		form      string
		wantChain int
		wantLeaf  string
	}{
		{dps.CSRFormNone, 3, ""},
		{dps.CSRFormChain, 3, ""},
		{dps.CSRFormPEM, 0, pemOf(chain[0])},
		{dps.CSRFormDER, 0, base64.StdEncoding.EncodeToString(chain[0])},
	}
	for _, tc := range tests {
		t.Run(tc.form, func(t *testing.T) {
			rs := devicewire.OperationStatusIn(op, tc.form).RegistrationState
			if len(rs.IssuedCertificateChain) != tc.wantChain || rs.IssuedClientCertificate != tc.wantLeaf {
				t.Fatalf("chain %d leaf %q", len(rs.IssuedCertificateChain), rs.IssuedClientCertificate)
			}
			if tc.wantLeaf == "" {
				if rs.TrustBundle != nil {
					t.Fatal("trust bundle for the old form")
				}
				return
			}
			if tb := rs.TrustBundle; tb == nil || len(tb.Certificates) != 2 || tb.Certificates[0].Certificate != pemOf(chain[1]) || tb.Certificates[1].Certificate != pemOf(chain[2]) {
				t.Fatalf("trust bundle %+v", rs.TrustBundle)
			}
		})
	}
	// Without an issued certificate nothing certificate-shaped appears.
	plain := *op
	plain.IssuedCertificateChain = nil
	if rs := devicewire.OperationStatusIn(&plain, dps.CSRFormPEM).RegistrationState; rs.IssuedClientCertificate != "" || rs.TrustBundle != nil {
		t.Fatalf("%+v", rs)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		d, limit string
		want     string
	}{
		{"0s", "0s", "1"}, {"1ms", "0s", "1"}, {"1.2s", "0s", "2"}, {"10m", "0s", "600"}, {"10m", "5m", "300"},
	} {
		d, _ := timeParse(tc.d)
		l, _ := timeParse(tc.limit)
		if got := devicewire.RetryAfterSeconds(d, l); got != tc.want {
			t.Errorf("RetryAfterSeconds(%s, %s) = %s, want %s", tc.d, tc.limit, got, tc.want)
		}
	}
}

var timeParse = time.ParseDuration
