package device_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

// firstCertificate registers regID with its symmetric key and a generated
// key, and returns the result and the issued certificate as a TLS client
// certificate.
func firstCertificate(t *testing.T, srv *zdpstest.Server, regID string, key []byte) (*device.Result, *tls.Certificate) {
	t.Helper()
	res, err := device.Register(context.Background(), device.Config{
		Endpoint: srv.Addr(), IDScope: srv.IDScope(), RegistrationID: regID, RootCAs: srv.RootCAs(),
		SymmetricKey: key, GenerateKey: true, MaxWait: time.Minute,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, srv.Logs())
	}
	tc, err := res.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return res, &tc
}

func renewConfig(srv *zdpstest.Server, regID string, cert *tls.Certificate) device.Config {
	return device.Config{
		Endpoint: srv.Addr(), IDScope: srv.IDScope(), RegistrationID: regID, RootCAs: srv.RootCAs(),
		Certificate: cert, MaxWait: time.Minute, MaxRetries: -1,
	}
}

func serialOf(c *x509.Certificate) string { return fmt.Sprintf("%032x", c.SerialNumber) }

// TestRealServerRenewal: a device registered with a symmetric key renews
// its operational certificate over mutual TLS against a real zdps serve.
func TestRealServerRenewal(t *testing.T) {
	srv := zdpstest.Start(t)
	ctx := context.Background()
	addHubs(t, srv, "hub-a.example.net", "hub-b.example.net", "hub-c.example.net")
	key1 := symmetricEnrollment(t, srv, "ren-1", "ren-device-1")
	key2 := symmetricEnrollment(t, srv, "ren-2", "")
	key3 := symmetricEnrollment(t, srv, "ren-3", "")

	first, cert1 := firstCertificate(t, srv, "ren-1", key1)
	verifyIssued(t, srv, first)
	var issued []string // every serial issued to ren-1
	issued = append(issued, serialOf(first.IssuedCertificateChain[0]))

	renewed, err := device.Renew(ctx, renewConfig(srv, "ren-1", cert1))
	if err != nil {
		t.Fatalf("renewal: %v\n%s", err, srv.Logs())
	}
	verifyIssued(t, srv, renewed)
	issued = append(issued, serialOf(renewed.IssuedCertificateChain[0]))
	switch {
	case issued[0] == issued[1]:
		t.Fatal("the renewal returned the old serial")
	case renewed.DeviceID != "ren-device-1" || renewed.DeviceID != first.DeviceID:
		t.Fatalf("device ID %q, first %q", renewed.DeviceID, first.DeviceID)
	case renewed.AssignedHub != first.AssignedHub:
		t.Fatalf("hub %q, first %q", renewed.AssignedHub, first.AssignedHub)
	case renewed.PrivateKey == nil:
		t.Fatal("no new key")
	}
	var raw struct {
		RegistrationState struct {
			X509 struct {
				CertificateInfo        *enrollment.X509CertificateInfo `json:"certificateInfo"`
				SigningCertificateInfo *enrollment.X509CertificateInfo `json:"signingCertificateInfo"`
			} `json:"x509"`
		} `json:"registrationState"`
	}
	if err := json.Unmarshal(renewed.Raw, &raw); err != nil {
		t.Fatal(err)
	}
	x := raw.RegistrationState.X509
	if x.CertificateInfo == nil || !strings.EqualFold(x.CertificateInfo.SerialNumber, strings.TrimLeft(issued[0], "0")) ||
		x.SigningCertificateInfo == nil || x.SigningCertificateInfo.SubjectName != first.IssuedCertificateChain[1].Subject.String() {
		t.Errorf("registrationState.x509 = %s", renewed.Raw)
	}

	t.Run("the renewed certificate renews again", func(t *testing.T) {
		tc, err := renewed.TLSCertificate()
		if err != nil {
			t.Fatal(err)
		}
		again, err := device.Renew(ctx, renewConfig(srv, "ren-1", &tc))
		if err != nil {
			t.Fatalf("%v\n%s", err, srv.Logs())
		}
		issued = append(issued, serialOf(again.IssuedCertificateChain[0]))
		if again.DeviceID != first.DeviceID || again.AssignedHub != first.AssignedHub {
			t.Errorf("%+v", again)
		}
	})

	_, cert2 := firstCertificate(t, srv, "ren-2", key2)
	tests := []struct {
		name  string
		cfg   device.Config
		want  error
		code  int
		inLog string
	}{
		{"certificate of another registration ID", renewConfig(srv, "ren-2", cert1), device.ErrUnauthorized, 401, "operational certificate issued to another registration"},
		{"another device's certificate for its own registration", renewConfig(srv, "ren-1", cert2), device.ErrUnauthorized, 401, "operational certificate issued to another registration"},
		{"no CSR", func() device.Config { c := renewConfig(srv, "ren-2", cert2); c.GenerateKey = false; return c }(), device.ErrBadRequest, 400, "renewal without a CSR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.code == 400 {
				_, err = device.Register(ctx, tc.cfg) // Renew would add a CSR
			} else {
				_, err = device.Renew(ctx, tc.cfg)
			}
			var de *device.Error
			if !errors.Is(err, tc.want) || !errors.As(err, &de) || de.StatusCode != tc.code {
				t.Fatalf("err = %v, want %v (%d)", err, tc.want, tc.code)
			}
			if tc.code == 400 && !strings.Contains(de.Message, "csr") {
				t.Errorf("the 400 does not say a csr is required: %q", de.Message)
			}
			if !srv.LogContains(`"reason":"` + tc.inLog + `"`) {
				t.Errorf("the log lacks the reason %q", tc.inLog)
			}
		})
	}

	t.Run("deleted and re-created registration", func(t *testing.T) {
		_, cert3 := firstCertificate(t, srv, "ren-3", key3)
		if err := srv.Client().DeleteRegistration(ctx, "ren-3", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := device.Renew(ctx, renewConfig(srv, "ren-3", cert3)); !errors.Is(err, device.ErrUnauthorized) {
			t.Fatalf("after deletion: %v", err)
		}
		firstCertificate(t, srv, "ren-3", key3)
		if _, err := device.Renew(ctx, renewConfig(srv, "ren-3", cert3)); !errors.Is(err, device.ErrUnauthorized) {
			t.Fatalf("after re-creation: %v", err)
		}
	})

	// zdps serve revokes on disable by default (--revoke-on-disable): the
	// renewal is then refused as revoked. Without revocation the answer
	// is disabled (TestRealServerRenewalExpired).
	t.Run("disabled enrollment revokes", func(t *testing.T) {
		c := srv.Client()
		e, err := c.GetEnrollment(ctx, "ren-2")
		if err != nil {
			t.Fatal(err)
		}
		e.ProvisioningStatus = enrollment.StatusDisabled
		if _, err := c.PutEnrollment(ctx, e, e.ETag); err != nil {
			t.Fatal(err)
		}
		if _, err := device.Renew(ctx, renewConfig(srv, "ren-2", cert2)); !errors.Is(err, device.ErrUnauthorized) {
			t.Fatalf("err = %v, want unauthorized", err)
		}
		if !srv.LogContains(`"reason":"certificate revoked"`) {
			t.Errorf("the log lacks the reason")
		}
	})

	// Every certificate issued to ren-1 is stored under its registration.
	srv.Stop()
	db, err := bolt.Open(filepath.Join(srv.DataDir, "zdps.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	certs, _, err := revocation.Certificates(db, nil).ListBy(ctx, revocation.IndexCertificatesByRegistration, "ren-1", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, c := range certs {
		stored[c.Serial] = c.DeviceID == "ren-device-1"
	}
	for _, s := range issued {
		if !stored[s] {
			t.Errorf("certificate %s is not stored for ren-1 with its device ID (stored: %v)", s, stored)
		}
	}
	st := store.New(db, nil)
	rec, err := st.Registrations.Get(ctx, "ren-1")
	if err != nil || len(rec.CertificateSerials) != len(issued) {
		t.Errorf("record serials %v, issued %v (%v)", rec.CertificateSerials, issued, err)
	}
}

// TestRealServerRenewalExpired: with revocation on disable turned off, a
// disabled enrollment answers disabled; and an operational certificate past
// its validity renews no more.
func TestRealServerRenewalExpired(t *testing.T) {
	srv := zdpstest.Start(t, "--cert-validity", "5s", "--revoke-on-disable=false")
	ctx := context.Background()
	addHubs(t, srv, "hub-a.example.net")
	key := symmetricEnrollment(t, srv, "ren-exp", "")
	disKey := symmetricEnrollment(t, srv, "ren-dis", "")
	res, cert := firstCertificate(t, srv, "ren-exp", key)
	_, disCert := firstCertificate(t, srv, "ren-dis", disKey)

	c := srv.Client()
	e, err := c.GetEnrollment(ctx, "ren-dis")
	if err != nil {
		t.Fatal(err)
	}
	e.ProvisioningStatus = enrollment.StatusDisabled
	if _, err := c.PutEnrollment(ctx, e, e.ETag); err != nil {
		t.Fatal(err)
	}
	if _, err := device.Renew(ctx, renewConfig(srv, "ren-dis", disCert)); !errors.Is(err, device.ErrDisabled) {
		t.Fatalf("disabled enrollment: err = %v, want disabled", err)
	}

	time.Sleep(time.Until(res.IssuedCertificateChain[0].NotAfter) + 1500*time.Millisecond)
	_, err = device.Renew(ctx, renewConfig(srv, "ren-exp", cert))
	var de *device.Error
	if !errors.Is(err, device.ErrUnauthorized) || !errors.As(err, &de) || de.StatusCode != 401 {
		t.Fatalf("err = %v, want 401", err)
	}
	if !srv.LogContains(`"reason":"operational certificate expired or not yet valid"`) {
		t.Errorf("the log lacks the reason:\n%s", srv.Logs())
	}
}
