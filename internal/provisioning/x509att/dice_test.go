package x509att_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/attestation/dice"
	"github.com/zdps/zdps/attestation/dice/dicesim"
	x509v "github.com/zdps/zdps/attestation/x509"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/provisioning/x509att"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

var update = flag.Bool("update", false, "regenerate the DICE test vectors in testdata/dice")

var vectorDir = filepath.Join("..", "..", "..", "testdata", "dice")

func readPEMChain(t *testing.T, file string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

type diceEnv struct {
	st   *store.Store
	svc  *provisioning.Service
	logs *bytes.Buffer
}

func newDICEEnv(t *testing.T) *diceEnv {
	t.Helper()
	be := testbackend.Bolt(t)
	e := &diceEnv{st: store.New(be, nil), logs: &bytes.Buffer{}}
	att, err := x509att.NewAttestor(e.st, x509v.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e.svc, err = provisioning.New(provisioning.Config{
		Store:     e.st,
		Attestors: map[string]port.Attestor{enrollment.AttestationX509: att},
		Allocator: hashed.New(),
		Logger:    slog.New(slog.NewJSONHandler(e.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"hub-a.example.net", "hub-b.example.net", "hub-c.example.net"} {
		put(t, e.st.Hubs, &enrollment.Hub{Name: h})
	}
	return e
}

func vectorPolicy(t *testing.T) *firmware.Policy {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorDir, "policy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p firmware.Policy
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return &p
}

func rootPEM(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorDir, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDICEVectors registers every chain of testdata/dice, in order,
// through the whole pipeline over bbolt, against an enrollment group that
// names the vector root and carries policy.json, and checks the outcome
// each vector documents (dicesim.Vectors, testdata/dice/README.md).
// -update regenerates the vectors first.
func TestDICEVectors(t *testing.T) {
	if *update {
		if err := dicesim.WriteVectors(vectorDir); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	e := newDICEEnv(t)
	put(t, e.st.Groups, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "dice-vectors", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{
			SigningCertificates: &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: rootPEM(t)}},
		}},
			FirmwarePolicy: vectorPolicy(t)},
	})

	var first *enrollment.Registration
	for _, v := range dicesim.Vectors() {
		t.Run(v.Name, func(t *testing.T) {
			chain := readPEMChain(t, filepath.Join(vectorDir, v.Name, "alias-chain.pem"))
			regID := v.Device.RegistrationID
			if chain[0].Subject.CommonName != regID {
				t.Fatalf("vector leaf CN %q, want %q", chain[0].Subject.CommonName, regID)
			}
			op, err := e.svc.Register(ctx, &port.Request{RegistrationID: regID, ClientCertificates: chain})
			switch v.Outcome {
			case "unauthorized":
				if !errors.Is(err, port.ErrUnauthorized) || !errors.Is(err, x509v.ErrChain) {
					t.Fatalf("want unauthorized (chain), got %v, %+v", err, op)
				}
				if _, err := e.st.Registrations.Get(ctx, regID); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("a refused device has a record (%v)", err)
				}
				return
			case "failed":
				if err != nil {
					t.Fatal(err)
				}
				if op.Status != enrollment.RegistrationFailed || op.ErrorCode != dps.CodeFirmwarePolicy || !strings.Contains(op.ErrorMessage, v.Reason) {
					t.Fatalf("want failed %d containing %q, got %s %d %q", dps.CodeFirmwarePolicy, v.Reason, op.Status, op.ErrorCode, op.ErrorMessage)
				}
				if _, err := e.st.Registrations.Get(ctx, regID); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("a refused device has a record (%v)", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("register: %v\n%s", err, e.logs)
			}
			if op.Status != enrollment.RegistrationAssigned {
				t.Fatalf("status %s %d %q", op.Status, op.ErrorCode, op.ErrorMessage)
			}
			rec, err := e.st.Registrations.Get(ctx, regID)
			if err != nil {
				t.Fatal(err)
			}
			if rec.DICE == nil || len(rec.DICE.Measurements) == 0 {
				t.Fatalf("record keeps no DICE state: %+v", rec)
			}
			// The DeviceID certificate is the one above the Alias.
			if want := dice.KeyID(chain[1].RawSubjectPublicKeyInfo); rec.DICE.DeviceIDKey != want {
				t.Errorf("DeviceID key %s, want %s", rec.DICE.DeviceIDKey, want)
			}
			if rec.DICE.UEID == "" {
				t.Error("UEID of the DeviceID certificate not recorded")
			}
			switch v.Name {
			case "tcbinfo":
				first = rec
			case "tcbinfo-updated":
				if first == nil {
					t.Fatal("tcbinfo did not run first")
				}
				if rec.DeviceID != first.DeviceID || rec.AssignedHub != first.AssignedHub || rec.DICE.DeviceIDKey != first.DICE.DeviceIDKey {
					t.Errorf("after the update: device %s hub %s key %s; before: %s %s %s", rec.DeviceID, rec.AssignedHub, rec.DICE.DeviceIDKey, first.DeviceID, first.AssignedHub, first.DICE.DeviceIDKey)
				}
				if first.DICE.Equal(rec.DICE) {
					t.Error("measurements did not change")
				}
				ev := auditEvent(t, e.logs, "firmware-change")
				if ev == nil {
					t.Fatalf("no firmware-change audit event:\n%s", e.logs)
				}
				if ev["old_measurements"] != first.DICE.Summary() || ev["new_measurements"] != rec.DICE.Summary() || ev["id"] != regID {
					t.Errorf("audit event %v", ev)
				}
			}
		})
	}
}

// TestDICEDeviceIDPinned: once a registration ID was provisioned with a
// DeviceID key, another device (another DeviceID under the same root)
// claiming it is unauthorized and changes nothing; deleting the record
// lets it register.
func TestDICEDeviceIDPinned(t *testing.T) {
	ctx := context.Background()
	e := newDICEEnv(t)
	root, err := dicesim.NewRoot("pinning root", nil)
	if err != nil {
		t.Fatal(err)
	}
	put(t, e.st.Groups, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "dice", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{
			SigningCertificates: &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: string(root.PEM())}},
		}}},
	})
	layer := int64(1)
	device := func(seed byte) []*x509.Certificate {
		c, err := dicesim.Build(root, dicesim.Device{UDS: bytes.Repeat([]byte{seed}, 32), RegistrationID: "pinned", Critical: true,
			AliasTcbInfos: []dice.TcbInfo{{Layer: &layer, FWIDs: []dice.FWID{dicesim.Measure([]byte("fw"))}}}})
		if err != nil {
			t.Fatal(err)
		}
		return []*x509.Certificate{c.Alias.Cert, c.DeviceID.Cert}
	}
	register := func(chain []*x509.Certificate) (*enrollment.Operation, error) {
		return e.svc.Register(ctx, &port.Request{RegistrationID: "pinned", ClientCertificates: chain})
	}
	if op, err := register(device(1)); err != nil || op.Status != enrollment.RegistrationAssigned {
		t.Fatalf("first device: %+v %v", op, err)
	}
	before, err := e.st.Registrations.Get(ctx, "pinned")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := register(device(2)); !errors.Is(err, port.ErrUnauthorized) {
		t.Fatalf("another DeviceID: %v, want unauthorized", err)
	}
	after, err := e.st.Registrations.Get(ctx, "pinned")
	if err != nil || after.ETag != before.ETag {
		t.Fatalf("the refusal changed the record: %v", err)
	}
	if op, err := register(device(1)); err != nil || op.Status != enrollment.RegistrationAssigned {
		t.Fatalf("the first device again: %+v %v", op, err)
	}
	if err := e.st.Registrations.Delete(ctx, "pinned", store.Condition{}); err != nil {
		t.Fatal(err)
	}
	if op, err := register(device(2)); err != nil || op.Status != enrollment.RegistrationAssigned {
		t.Fatalf("a replacement device after the record was deleted: %+v %v", op, err)
	}
}

func auditEvent(t *testing.T, logs *bytes.Buffer, action string) map[string]any {
	t.Helper()
	for _, line := range strings.Split(logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "audit" && m["action"] == action {
			return m
		}
	}
	return nil
}
