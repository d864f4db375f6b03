package api

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

type testCert struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func (c testCert) pem() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw}))
}

// mkCert issues a certificate for cn signed by parent (self-signed when
// parent is nil), valid around the given time.
func mkCert(t *testing.T, cn string, ca bool, parent *testCert, at time.Time) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: at.Add(-time.Hour), NotAfter: at.Add(time.Hour),
		BasicConstraintsValid: true, IsCA: ca,
	}
	signer, pc := crypto.Signer(key), tmpl
	if parent != nil {
		signer, pc = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pc, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{cert: c, key: key}
}

type codeAnswer struct {
	Name             string    `json:"name"`
	VerificationCode string    `json:"verificationCode"`
	Expiry           time.Time `json:"verificationCodeExpiryUtc"`
}

func TestCertificateProofOfPossession(t *testing.T) {
	var clock atomic.Pointer[time.Time]
	now := testNow
	clock.Store(&now)
	e := newEnv(t, func(c *testConfig) { c.Now = func() time.Time { return *clock.Load() } })
	e.ownerTok = e.token(e.owner, e.host, 24*time.Hour)
	advance := func(d time.Duration) { n := clock.Load().Add(d); clock.Store(&n) }

	ca := mkCert(t, "My Root CA", true, nil, testNow)
	other := mkCert(t, "Someone else's CA", true, nil, testNow)

	// Register it: unverified, info filled, no code shown.
	var got enrollment.CACertificate
	e.must(req{method: http.MethodPut, path: "/certificates/my-ca", body: map[string]string{"name": "my-ca", "certificate": ca.pem()}}, http.StatusOK).decode(t, &got)
	if got.IsVerified || got.Info == nil || got.Info.SubjectName != "CN=My Root CA" || got.VerificationCode != "" {
		t.Fatalf("registered: %+v", got)
	}
	code := func() string {
		var a codeAnswer
		e.must(req{method: http.MethodPost, path: "/certificates/my-ca/verificationCode"}, http.StatusOK).decode(t, &a)
		if len(a.VerificationCode) != 32 || !a.Expiry.After(*clock.Load()) {
			t.Fatalf("code answer %+v", a)
		}
		return a.VerificationCode
	}
	verify := func(c testCert) reply {
		return e.do(req{method: http.MethodPost, path: "/certificates/my-ca/verify", body: map[string]string{"certificate": c.pem()}})
	}

	c1 := code()
	if r := e.must(req{method: http.MethodGet, path: "/certificates/my-ca"}, http.StatusOK); strings.Contains(string(r.body), c1) {
		t.Fatal("GET shows the verification code")
	}

	refusals := []struct {
		name  string
		proof testCert
	}{
		{"wrong CN", mkCert(t, "not-the-code", false, &ca, testNow)},
		{"signed by another key", mkCert(t, c1, false, &other, testNow)},
		{"self-signed with the code", mkCert(t, c1, false, nil, testNow)},
		{"proof not currently valid", mkCert(t, c1, false, &ca, testNow.Add(-48*time.Hour))},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			before, err := e.st.CACertificates.Get(t.Context(), "my-ca")
			if err != nil {
				t.Fatal(err)
			}
			r := verify(tc.proof)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			r.errBody(t)
			after, err := e.st.CACertificates.Get(t.Context(), "my-ca")
			if err != nil {
				t.Fatal(err)
			}
			if after.ETag != before.ETag || after.IsVerified || after.VerificationCode != c1 {
				t.Fatal("a refused verification changed the CA certificate")
			}
		})
	}

	t.Run("base64 DER proof verifies and consumes the code", func(t *testing.T) {
		proof := mkCert(t, c1, false, &ca, testNow)
		var v enrollment.CACertificate
		e.must(req{method: http.MethodPost, path: "/certificates/my-ca/verify", body: map[string]string{"certificate": base64.StdEncoding.EncodeToString(proof.cert.Raw)}}, http.StatusOK).decode(t, &v)
		if !v.IsVerified {
			t.Fatalf("not verified: %+v", v)
		}
		r := verify(proof)
		if r.status != http.StatusBadRequest || !strings.Contains(r.errBody(t).Message, "no outstanding verification code") {
			t.Fatalf("code reused: status %d %s", r.status, r.body)
		}
	})

	t.Run("expired code", func(t *testing.T) {
		c2 := code()
		advance(VerificationCodeTTL + time.Minute)
		r := verify(mkCert(t, c2, false, &ca, *clock.Load()))
		if r.status != http.StatusBadRequest || !strings.Contains(r.errBody(t).Message, "expired") {
			t.Fatalf("expired code: status %d %s", r.status, r.body)
		}
	})

	t.Run("same certificate again stays verified, another one does not", func(t *testing.T) {
		var v enrollment.CACertificate
		e.must(req{method: http.MethodPut, path: "/certificates/MY-CA", body: map[string]string{"name": "my-ca", "certificate": ca.pem()}}, http.StatusOK).decode(t, &v)
		if !v.IsVerified {
			t.Fatal("re-uploading the same certificate lost the verification")
		}
		e.must(req{method: http.MethodPut, path: "/certificates/my-ca", body: map[string]string{"name": "my-ca", "certificate": other.pem()}}, http.StatusOK).decode(t, &v)
		if v.IsVerified {
			t.Fatal("a new certificate inherited the verification")
		}
	})

	t.Run("list and delete", func(t *testing.T) {
		var list []enrollment.CACertificate
		e.must(req{method: http.MethodGet, path: "/Certificates"}, http.StatusOK).decode(t, &list)
		if len(list) != 1 || list[0].Name != "my-ca" {
			t.Fatalf("list %+v", list)
		}
		e.must(req{method: http.MethodDelete, path: "/certificates/my-ca"}, http.StatusNoContent)
		e.must(req{method: http.MethodGet, path: "/certificates/my-ca"}, http.StatusNotFound)
		e.must(req{method: http.MethodPost, path: "/certificates/my-ca/verificationcode"}, http.StatusNotFound)
	})
}

func TestCertificateInput(t *testing.T) {
	e := newEnv(t)
	ca := mkCert(t, "CA", true, nil, testNow)
	leaf := mkCert(t, "leaf", false, &ca, testNow)
	cases := []struct {
		name   string
		path   string
		body   any
		status int
	}{
		{"not a CA", "/certificates/leaf", map[string]string{"name": "leaf", "certificate": leaf.pem()}, http.StatusBadRequest},
		{"not a certificate", "/certificates/junk", map[string]string{"name": "junk", "certificate": "bm90IGEgY2VydA=="}, http.StatusBadRequest},
		{"name differs from the path", "/certificates/a", map[string]string{"name": "b", "certificate": ca.pem()}, http.StatusBadRequest},
		{"bad name", "/certificates/-bad-", map[string]string{"name": "-bad-", "certificate": ca.pem()}, http.StatusBadRequest},
		{"unknown field", "/certificates/ca", map[string]any{"name": "ca", "certificate": ca.pem(), "isVerifiedPlease": true}, http.StatusBadRequest},
		{"isVerified is read-only", "/certificates/ca", map[string]any{"name": "ca", "certificate": ca.pem(), "isVerified": true}, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{method: http.MethodPut, path: tc.path, body: tc.body})
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == http.StatusOK {
				var c enrollment.CACertificate
				r.decode(t, &c)
				if c.IsVerified {
					t.Fatal("a client set isVerified")
				}
			}
		})
	}
	t.Run("reader policy is forbidden", func(t *testing.T) {
		e.must(req{method: http.MethodGet, path: "/certificates", token: e.token(e.reader, e.host, time.Hour)}, http.StatusForbidden)
	})
}

// A group (or enrollment) may reference only a registered CA certificate;
// the 400 names the reference. Bulk reports it per item.
func TestCAReferencesMustExist(t *testing.T) {
	e := newEnv(t)
	ca := mkCert(t, "CA", true, nil, testNow)
	e.must(req{method: http.MethodPut, path: "/certificates/known-ca", body: map[string]string{"name": "known-ca", "certificate": ca.pem()}}, http.StatusOK)
	group := func(id, ref string) map[string]any {
		return map[string]any{
			"enrollmentGroupId": id,
			"attestation":       map[string]any{"type": "x509", "x509": map[string]any{"caReferences": map[string]string{"primary": ref}}},
		}
	}
	r := e.do(req{method: http.MethodPut, path: "/enrollmentGroups/g1", body: group("g1", "no-such-ca")})
	if r.status != http.StatusBadRequest || !strings.Contains(r.errBody(t).Message, `"no-such-ca"`) {
		t.Fatalf("unknown reference: %d %s", r.status, r.body)
	}
	e.must(req{method: http.MethodPut, path: "/enrollmentGroups/g2", body: group("g2", "known-ca")}, http.StatusOK)

	var res enrollment.BulkEnrollmentGroupOperationResult
	e.must(req{method: http.MethodPost, path: "/enrollmentGroups", body: map[string]any{
		"mode": "create", "enrollmentGroups": []any{group("g3", "no-such-ca"), group("g4", "known-ca")},
	}}, http.StatusOK).decode(t, &res)
	if res.IsSuccessful || len(res.Errors) != 1 || res.Errors[0].EnrollmentGroupID != "g3" || res.Errors[0].ErrorCode != dps.CodeBadArgument {
		t.Fatalf("bulk result %+v", res)
	}
	e.must(req{method: http.MethodGet, path: "/enrollmentGroups/g4"}, http.StatusOK)
	e.must(req{method: http.MethodGet, path: "/enrollmentGroups/g3"}, http.StatusNotFound)
}
