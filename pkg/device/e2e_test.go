package device_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

// These tests register against a real `zdps serve` process.

func addHubs(t *testing.T, srv *zdpstest.Server, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := srv.Client().PutHub(context.Background(), &enrollment.Hub{Name: n, AllocationWeight: 1}, ""); err != nil {
			t.Fatal(err)
		}
	}
}

// symmetricEnrollment creates an individual enrollment with generated keys
// and returns its primary key.
func symmetricEnrollment(t *testing.T, srv *zdpstest.Server, regID, deviceID string) []byte {
	t.Helper()
	ctx := context.Background()
	c := srv.Client()
	if _, err := c.PutEnrollment(ctx, &enrollment.IndividualEnrollment{
		RegistrationID: regID,
		DeviceID:       deviceID, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := c.EnrollmentKeys(ctx, regID)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, keys.SymmetricKey.PrimaryKey)
}

func decode(t *testing.T, b64 string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verifyIssued checks the chain against the server's CA bundle for client
// authentication, and that the leaf names the device.
func verifyIssued(t *testing.T, srv *zdpstest.Server, res *device.Result) {
	t.Helper()
	chain := res.IssuedCertificateChain
	if len(chain) < 2 {
		t.Fatalf("issued chain has %d certificates", len(chain))
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: srv.RootCAs(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued leaf does not verify against the CA bundle for client auth: %v", err)
	}
	if chain[0].Subject.CommonName != res.DeviceID {
		t.Errorf("leaf CN %q, device ID %q", chain[0].Subject.CommonName, res.DeviceID)
	}
}

func TestRealServerSymmetricKey(t *testing.T) {
	srv := zdpstest.Start(t)
	ctx := context.Background()
	scope := srv.IDScope()
	addHubs(t, srv, "hub-a.example.net", "hub-b.example.net")
	key := symmetricEnrollment(t, srv, "sdk-sym-1", "sdk-device-1")

	c := srv.Client()
	if _, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "sdk-group", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	gkeys, err := c.GroupKeys(ctx, "sdk-group")
	if err != nil {
		t.Fatal(err)
	}
	groupKey := decode(t, gkeys.SymmetricKey.PrimaryKey)

	base := func(regID string) device.Config {
		return device.Config{Endpoint: srv.Addr(), IDScope: scope, RegistrationID: regID, RootCAs: srv.RootCAs(), MaxWait: time.Minute}
	}

	t.Run("individual key with CSR", func(t *testing.T) {
		cfg := base("sdk-sym-1")
		cfg.SymmetricKey = key
		cfg.GenerateKey = true
		cfg.Payload = json.RawMessage(`{"model":"m1"}`)
		res, err := device.Register(ctx, cfg)
		if err != nil {
			t.Fatalf("%v\n%s", err, srv.Logs())
		}
		if res.Status != "assigned" || res.DeviceID != "sdk-device-1" || !strings.HasPrefix(res.AssignedHub, "hub-") || res.PrivateKey == nil {
			t.Fatalf("result %+v", res)
		}
		verifyIssued(t, srv, res)
		rec, err := c.GetRegistration(ctx, "sdk-sym-1")
		if err != nil || rec.AssignedHub != res.AssignedHub || rec.DeviceID != res.DeviceID {
			t.Fatalf("record %+v, %v", rec, err)
		}

		t.Run("re-registration keeps the device ID", func(t *testing.T) {
			again, err := device.Register(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if again.DeviceID != res.DeviceID || again.AssignedHub != res.AssignedHub {
				t.Errorf("second registration %+v, first %+v", again, res)
			}
			if again.IssuedCertificateChain[0].SerialNumber.Cmp(res.IssuedCertificateChain[0].SerialNumber) == 0 {
				t.Error("a new CSR got the old certificate")
			}
		})
	})

	t.Run("individual key without CSR", func(t *testing.T) {
		cfg := base("sdk-sym-1")
		cfg.SymmetricKey = key
		res, err := device.Register(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.DeviceID != "sdk-device-1" || len(res.IssuedCertificateChain) != 0 || res.PrivateKey != nil {
			t.Fatalf("result %+v", res)
		}
	})

	t.Run("group key derivation", func(t *testing.T) {
		cfg := base("sdk-grp-dev-7")
		cfg.GroupKey = groupKey
		cfg.GenerateKey = true
		res, err := device.Register(ctx, cfg)
		if err != nil {
			t.Fatalf("%v\n%s", err, srv.Logs())
		}
		if res.DeviceID != "sdk-grp-dev-7" || res.EnrollmentGroupID != "sdk-group" {
			t.Fatalf("result %+v", res)
		}
		verifyIssued(t, srv, res)
	})

	t.Run("group key used directly is refused", func(t *testing.T) {
		cfg := base("sdk-grp-dev-8")
		cfg.SymmetricKey = groupKey
		_, err := device.Register(ctx, cfg)
		if !errors.Is(err, device.ErrUnauthorized) {
			t.Fatalf("want ErrUnauthorized, got %v", err)
		}
	})

	t.Run("wrong key", func(t *testing.T) {
		cfg := base("sdk-sym-1")
		cfg.SymmetricKey = []byte("not the key not the key not the!")
		_, err := device.Register(ctx, cfg)
		if !errors.Is(err, device.ErrUnauthorized) {
			t.Fatalf("want ErrUnauthorized, got %v", err)
		}
		var e *device.Error
		if !errors.As(err, &e) || e.StatusCode != 401 || e.ErrorCode != 401002 || e.TrackingID == "" {
			t.Fatalf("error %#v", e)
		}
	})

	t.Run("unknown ID scope", func(t *testing.T) {
		cfg := base("sdk-sym-1")
		cfg.IDScope = "0ne00000000"
		cfg.SymmetricKey = key
		if _, err := device.Register(ctx, cfg); !errors.Is(err, device.ErrNotFound) {
			t.Fatalf("want ErrNotFound, got %v", err)
		}
	})

	t.Run("disabled enrollment", func(t *testing.T) {
		dkey := symmetricEnrollment(t, srv, "sdk-sym-off", "")
		e, err := c.GetEnrollment(ctx, "sdk-sym-off")
		if err != nil {
			t.Fatal(err)
		}
		e.ProvisioningStatus = "disabled"
		if _, err := c.PutEnrollment(ctx, e, ""); err != nil {
			t.Fatal(err)
		}
		cfg := base("sdk-sym-off")
		cfg.SymmetricKey = dkey
		if _, err := device.Register(ctx, cfg); !errors.Is(err, device.ErrDisabled) {
			t.Fatalf("want ErrDisabled, got %v", err)
		}
	})
}

func TestRealServerPolling(t *testing.T) {
	srv := zdpstest.Start(t, "--azure-202")
	ctx := context.Background()
	addHubs(t, srv, "hub-only.example.net")
	key := symmetricEnrollment(t, srv, "sdk-202", "")
	res, err := device.Register(ctx, device.Config{
		Endpoint: srv.Addr(), IDScope: srv.IDScope(), RegistrationID: "sdk-202", SymmetricKey: key,
		RootCAs: srv.RootCAs(), GenerateKey: true, Payload: json.RawMessage(`{"model":"x1"}`), MaxWait: time.Minute,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, srv.Logs())
	}
	if res.AssignedHub != "hub-only.example.net" || res.OperationID == "" {
		t.Fatalf("result %+v", res)
	}
	verifyIssued(t, srv, res)
	// No custom allocation webhook, so no payload: the device's own is
	// never echoed (Azure's behaviour).
	if len(res.Payload) != 0 {
		t.Errorf("the device's own payload was echoed: %s", res.Payload)
	}
}
