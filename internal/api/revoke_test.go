package api

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

func testCA(t *testing.T) *ca.CA {
	t.Helper()
	c, err := ca.New(context.Background(), ca.Config{Storage: ca.BackendStorage(memory.New()), KEK: make([]byte, 32), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// seedIssued stores a registration record (through group when not "")
// and a certificate for it, as the pipeline does, and returns the serial.
func (e *env) seedIssued(regID, group string, n int) string {
	e.t.Helper()
	ctx := context.Background()
	serial := fmt.Sprintf("%032x", n)
	certs := revocation.Certificates(e.st.Backend, func() time.Time { return testNow })
	err := e.st.Backend.Update(ctx, func(tx store.Tx) error {
		rec := &enrollment.Registration{RegistrationID: regID, DeviceID: regID, Status: enrollment.RegistrationAssigned, AssignedHub: "hub", EnrollmentGroupID: group}
		if _, err := e.st.Registrations.In(tx).Put(ctx, rec, store.Condition{}); err != nil {
			return err
		}
		_, err := certs.In(tx).Put(ctx, &enrollment.Certificate{Serial: serial, RegistrationID: regID, DeviceID: regID, NotBefore: testNow, NotAfter: testNow.Add(24 * time.Hour)}, store.Condition{})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return serial
}

// getRaw GETs a route that answers something other than JSON, with the
// owner token when auth, and checks status and content type.
func (e *env) getRaw(path string, auth bool, contentType string) []byte {
	e.t.Helper()
	hr, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth {
		hr.URL.RawQuery = "api-version=" + testVersion
		hr.Header.Set("Authorization", e.ownerTok)
	}
	resp, err := e.srv.Client().Do(hr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != contentType {
		e.t.Fatalf("GET %s: %d %q: %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return b
}

func (e *env) crl() *x509.RevocationList {
	e.t.Helper()
	crl, err := x509.ParseRevocationList(e.getRaw("/crl", false, "application/pkix-crl"))
	if err != nil {
		e.t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(e.api.cfg.CA.Intermediate()); err != nil {
		e.t.Fatalf("CRL signature: %v", err)
	}
	return crl
}

func listed(crl *x509.RevocationList) map[string]int {
	m := map[string]int{}
	for _, r := range crl.RevokedCertificateEntries {
		m[fmt.Sprintf("%032x", r.SerialNumber)] = r.ReasonCode
	}
	return m
}

func disabled(m map[string]any) map[string]any {
	m["provisioningStatus"] = "disabled"
	return m
}

// TestRevocationOnChange: each change that withdraws a device's right
// revokes exactly its certificates, and the CRL lists them with the
// reason; a change that withdraws nothing revokes nothing.
func TestRevocationOnChange(t *testing.T) {
	const (
		deleted   = revocation.ReasonCessationOfOperation
		withdrawn = revocation.ReasonPrivilegeWithdrawn
	)
	tests := []struct {
		name string
		// devices get a record (through group when set) and a
		// certificate before change runs.
		devices []string
		group   string
		change  func(e *env)
		// keep sets Config.KeepCertificatesOnDisable.
		keep bool
		// revoked: whether the devices' certificates end up in the CRL,
		// with reason.
		revoked bool
		reason  int
	}{
		{name: "registration deleted", devices: []string{"dev-1"},
			change: func(e *env) {
				e.must(req{method: http.MethodDelete, path: "/registrations/dev-1"}, http.StatusNoContent)
			},
			revoked: true, reason: deleted},
		{name: "enrollment disabled", devices: []string{"dev-1"},
			change: func(e *env) {
				e.must(req{method: http.MethodPut, path: "/enrollments/dev-1", body: disabled(symEnrollment("dev-1"))}, http.StatusOK)
			},
			revoked: true, reason: withdrawn},
		{name: "enrollment updated, still enabled", devices: []string{"dev-1"},
			change: func(e *env) {
				e.must(req{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-1")}, http.StatusOK)
			}},
		{name: "enrollment deleted", devices: []string{"dev-1"},
			change: func(e *env) {
				e.must(req{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-1")}, http.StatusOK)
				e.must(req{method: http.MethodDelete, path: "/enrollments/dev-1"}, http.StatusNoContent)
			},
			revoked: true, reason: deleted},
		{name: "enrollments bulk-deleted", devices: []string{"dev-1"},
			change: func(e *env) {
				e.must(req{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-1")}, http.StatusOK)
				e.must(req{method: http.MethodPost, path: "/enrollments", body: bulkBody("delete", map[string]any{"registrationId": "dev-1"})}, http.StatusOK)
			},
			revoked: true, reason: deleted},
		{name: "group disabled", devices: []string{"g-1", "g-2", "g-3", "g-4"}, group: "grp-1",
			change: func(e *env) {
				e.must(req{method: http.MethodPut, path: "/enrollmentGroups/grp-1", body: disabled(symGroup("grp-1"))}, http.StatusOK)
			},
			revoked: true, reason: withdrawn},
		{name: "group deleted", devices: []string{"g-1", "g-2"}, group: "grp-1",
			change: func(e *env) {
				e.must(req{method: http.MethodPut, path: "/enrollmentGroups/grp-1", body: symGroup("grp-1")}, http.StatusOK)
				e.must(req{method: http.MethodDelete, path: "/enrollmentGroups/grp-1"}, http.StatusNoContent)
			},
			revoked: true, reason: deleted},
		{name: "groups bulk-updated disabled", devices: []string{"g-1", "g-2"}, group: "grp-1",
			change: func(e *env) {
				e.must(req{method: http.MethodPost, path: "/enrollmentGroups", body: map[string]any{"mode": "update", "enrollmentGroups": []any{disabled(symGroup("grp-1"))}}}, http.StatusOK)
			},
			revoked: true, reason: withdrawn},
		{name: "revocation turned off", devices: []string{"dev-1"}, keep: true,
			change: func(e *env) {
				e.must(req{method: http.MethodDelete, path: "/registrations/dev-1"}, http.StatusNoContent)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *testConfig) { c.CA = testCA(t); c.KeepCertificatesOnDisable = tc.keep })
			bystander := e.seedIssued("bystander", "other-group", 1000)
			var serials []string
			for i, d := range tc.devices {
				serials = append(serials, e.seedIssued(d, tc.group, i+1))
			}
			before := e.crl().Number.Int64()
			tc.change(e)
			crl := e.crl()
			got := listed(crl)
			if _, ok := got[bystander]; ok {
				t.Error("a bystander's certificate was revoked")
			}
			for _, s := range serials {
				reason, ok := got[s]
				if ok != tc.revoked || (ok && reason != tc.reason) {
					t.Errorf("serial %s: listed %v reason %d, want listed %v reason %d", s, ok, reason, tc.revoked, tc.reason)
				}
				if r, err := e.rev.IsRevoked(context.Background(), s); err != nil || r != tc.revoked {
					t.Errorf("IsRevoked(%s) = %v, %v", s, r, err)
				}
			}
			if tc.revoked && crl.Number.Int64() <= before {
				t.Errorf("CRL number %d after %d", crl.Number.Int64(), before)
			}
		})
	}
}

func TestCARoutes(t *testing.T) {
	t.Run("no CA", func(t *testing.T) {
		e := newEnv(t)
		for _, p := range []string{"/crl", "/ca", "/ca/bundle"} {
			e.must(req{method: http.MethodGet, path: p}, http.StatusNotFound).errBody(t)
		}
	})
	e := newEnv(t, func(c *testConfig) { c.CA = testCA(t) })
	t.Run("info", func(t *testing.T) {
		var info dps.CAInfo
		e.must(req{method: http.MethodGet, path: "/CA"}, http.StatusOK).decode(t, &info)
		inter := e.api.cfg.CA.Intermediate()
		if info.Intermediate.Serial != fmt.Sprintf("%x", inter.SerialNumber) || info.Intermediate.Subject != inter.Subject.String() ||
			len(info.Root.SHA256Thumbprint) != 64 || !info.Root.NotAfter.After(testNow) {
			t.Errorf("info %+v", info)
		}
	})
	t.Run("bundle", func(t *testing.T) {
		blk, rest := pem.Decode(e.getRaw("/ca/bundle", true, "application/x-pem-file"))
		if blk == nil {
			t.Fatal("no PEM")
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil || !c.Equal(e.api.cfg.CA.Intermediate()) {
			t.Errorf("first certificate is not the intermediate: %v", err)
		}
		if blk, _ = pem.Decode(rest); blk == nil {
			t.Error("no root")
		}
	})
	t.Run("CRL needs no token and no api-version", func(t *testing.T) {
		if _, err := x509.ParseRevocationList(e.getRaw("/crl", false, "application/pkix-crl")); err != nil {
			t.Fatal(err)
		}
	})
	// A CRL source without rotated-out intermediates knows no issuer:
	// 404, never the current CRL under another issuer's name.
	t.Run("CRL of an unknown issuer", func(t *testing.T) {
		e.must(req{method: http.MethodGet, path: "/crl?issuer=00FF"}, http.StatusNotFound)
	})
}
