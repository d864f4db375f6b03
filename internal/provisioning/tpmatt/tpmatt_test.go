package tpmatt_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/attestation/tpm"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/provisioning/tpmatt"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/internal/tpmsim"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

const scope = "0ne000TPM01"

type env struct {
	st   *store.Store
	att  *tpmatt.Attestor
	svc  *provisioning.Service
	logs *bytes.Buffer
	mu   sync.Mutex
	now  time.Time
}

func (e *env) clock() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }
func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func newEnv(t *testing.T, tweak ...func(*tpmatt.Config)) *env {
	t.Helper()
	b := testbackend.Bolt(t)
	e := &env{now: time.Now().UTC()}
	e.st = store.New(b, e.clock)
	logs := &syncBuffer{}
	e.logs = &logs.Buffer
	cfg := tpmatt.Config{Store: e.st, Now: e.clock}
	for _, f := range tweak {
		f(&cfg)
	}
	a, err := tpmatt.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.att = a
	e.svc, err = provisioning.New(provisioning.Config{
		Store:     e.st,
		Attestors: map[string]port.Attestor{enrollment.AttestationTPM: a},
		Allocator: hashed.New(),
		Logger:    slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:       e.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Hubs.Put(context.Background(), &enrollment.Hub{Name: "hub1.example"}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) enroll(t *testing.T, regID string, ek []byte, status string) {
	t.Helper()
	en := &enrollment.IndividualEnrollment{
		RegistrationID: regID, Spec: enrollment.Spec{ProvisioningStatus: status,
			Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationTPM,
				TPM: &enrollment.TPMAttestation{EndorsementKey: base64.StdEncoding.EncodeToString(ek)}}},
	}
	if _, err := e.st.Enrollments.Put(context.Background(), en, store.Condition{}); err != nil {
		t.Fatal(err)
	}
}

// dev is a simulated device: its TPM and the SAS it builds as the Node SDK
// does (sr URL-encoded, signed as sent, skn=registration).
type dev struct {
	tpm   *device.TPM
	regID string
}

func newDev(t *testing.T) *dev {
	d, err := device.NewTPM(tpmsim.Open(t))
	if err != nil {
		t.Fatal(err)
	}
	return &dev{tpm: d, regID: d.RegistrationID()}
}

func (d *dev) body() *enrollment.TPMAttestation {
	return &enrollment.TPMAttestation{
		EndorsementKey: base64.StdEncoding.EncodeToString(d.tpm.EndorsementKey()),
		StorageRootKey: base64.StdEncoding.EncodeToString(d.tpm.StorageRootKey()),
	}
}

func (d *dev) sas(t *testing.T, expiry time.Time) string {
	t.Helper()
	sr := url.QueryEscape(scope + "/registrations/" + d.regID)
	se := strconv.FormatInt(expiry.Unix(), 10)
	sig, err := d.tpm.SignWithIdentity([]byte(sr + "\n" + se))
	if err != nil {
		t.Fatal(err)
	}
	return "SharedAccessSignature sr=" + sr + "&sig=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig)) + "&skn=registration&se=" + se
}

// challenge runs round one and activates the blob in the TPM.
func (e *env) challenge(t *testing.T, d *dev) string {
	t.Helper()
	_, err := e.svc.Register(context.Background(), &port.Request{IDScope: scope, RegistrationID: d.regID, TPM: d.body()})
	var ch *port.TPMChallenge
	if !errors.As(err, &ch) || !errors.Is(err, port.ErrUnauthorized) {
		t.Fatalf("round one = %v, want a TPM challenge", err)
	}
	blob, err := base64.StdEncoding.DecodeString(ch.AuthenticationKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.tpm.ActivateIdentityKey(blob); err != nil {
		t.Fatalf("the TPM refused the challenge: %v", err)
	}
	return ch.AuthenticationKey
}

func TestTwoRoundRegistration(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	d := newDev(t)
	e.enroll(t, d.regID, d.tpm.EndorsementKey(), "")
	blob1 := e.challenge(t, d)
	auth := d.sas(t, e.clock().Add(time.Hour))

	req := &port.Request{IDScope: scope, RegistrationID: d.regID, TPM: d.body(), Authorization: auth}
	op, err := e.svc.Register(ctx, req)
	if err != nil {
		t.Fatalf("round two: %v", err)
	}
	if op.Status != enrollment.RegistrationAssigned || op.Registration.AttestationType != enrollment.AttestationTPM || op.TPMAuthenticationKey == "" {
		t.Fatalf("round two = %+v", op)
	}
	blob2, _ := base64.StdEncoding.DecodeString(op.TPMAuthenticationKey)
	if err := d.tpm.ActivateIdentityKey(blob2); err != nil {
		t.Fatalf("the TPM refused the key of the assigned answer: %v", err)
	}

	// The SDKs poll with the SAS of round two and no body.
	poll := &port.Request{IDScope: scope, RegistrationID: d.regID, Authorization: auth}
	got, err := e.svc.OperationStatus(ctx, poll, op.OperationID)
	if err != nil || got.TPMAuthenticationKey != op.TPMAuthenticationKey {
		t.Fatalf("poll = %v, %v", got, err)
	}
	if _, err := e.svc.Status(ctx, poll); err != nil {
		t.Fatalf("status lookup: %v", err)
	}

	// Replaying round two is refused, with or without the tpm body.
	for _, r := range []*port.Request{req, poll} {
		if _, err := e.svc.Register(ctx, r); !errors.Is(err, port.ErrUnauthorized) {
			t.Fatalf("replayed register = %v, want ErrUnauthorized", err)
		}
	}
	// After the poll window the SAS opens nothing.
	e.advance(tpmatt.DefaultPollWindow + time.Second)
	if _, err := e.svc.OperationStatus(ctx, poll, op.OperationID); !errors.Is(err, port.ErrUnauthorized) {
		t.Fatalf("late poll = %v, want ErrUnauthorized", err)
	}

	// No secret in the logs: the SAS, its signature, the blobs.
	logs := e.logs.String()
	sig := auth[strings.Index(auth, "sig=")+4 : strings.Index(auth, "&skn")]
	for name, s := range map[string]string{"SAS": auth, "signature": sig, "challenge blob": blob1[:40], "assigned blob": op.TPMAuthenticationKey[:40]} {
		if strings.Contains(logs, s) {
			t.Errorf("the logs contain the %s", name)
		}
	}
	if !strings.Contains(logs, "TPM challenge issued") || !strings.Contains(logs, "registration assigned") {
		t.Errorf("the logs miss the challenge or the assignment:\n%s", logs)
	}
}

// TestSecondRoundRace: two second rounds with the same SAS at once; one
// registration commits, the other is refused.
func TestSecondRoundRace(t *testing.T) {
	e := newEnv(t)
	d := newDev(t)
	e.enroll(t, d.regID, d.tpm.EndorsementKey(), "")
	e.challenge(t, d)
	auth := d.sas(t, e.clock().Add(time.Hour))
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = e.svc.Register(context.Background(), &port.Request{IDScope: scope, RegistrationID: d.regID, TPM: d.body(), Authorization: auth})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, port.ErrUnauthorized):
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d registrations committed with one challenge, want 1 (%v)", ok, errs)
	}
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	d := newDev(t)
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherEK := tpm.EKTemplatePublic(&k.PublicKey)

	t.Run("wrong EK", func(t *testing.T) {
		e.enroll(t, d.regID, otherEK, "")
		_, err := e.svc.Register(ctx, &port.Request{IDScope: scope, RegistrationID: d.regID, TPM: d.body()})
		var ch *port.TPMChallenge
		if !errors.Is(err, port.ErrUnauthorized) || errors.As(err, &ch) {
			t.Fatalf("Register = %v, want a refusal without challenge", err)
		}
	})
	e.enroll(t, d.regID, d.tpm.EndorsementKey(), "")
	t.Run("no enrollment", func(t *testing.T) {
		_, err := e.svc.Register(ctx, &port.Request{IDScope: scope, RegistrationID: "nobody", TPM: d.body()})
		if !errors.Is(err, port.ErrUnauthorized) {
			t.Fatalf("Register = %v", err)
		}
	})
	t.Run("malformed EK", func(t *testing.T) {
		b := d.body()
		b.EndorsementKey = base64.StdEncoding.EncodeToString([]byte{0, 4, 1, 2, 3, 4})
		_, err := e.svc.Register(ctx, &port.Request{IDScope: scope, RegistrationID: d.regID, TPM: b})
		if !errors.Is(err, port.ErrInvalid) {
			t.Fatalf("Register = %v, want ErrInvalid", err)
		}
	})
	t.Run("SRK that is not a storage key", func(t *testing.T) {
		b := d.body()
		b.StorageRootKey = base64.StdEncoding.EncodeToString(tpm.MarshalRSAPublic(&k.PublicKey, tpm.SRKAttributes|tpm.AttrSign, nil))
		_, err := e.svc.Register(ctx, &port.Request{IDScope: scope, RegistrationID: d.regID, TPM: b})
		if !errors.Is(err, port.ErrInvalid) {
			t.Fatalf("Register = %v, want ErrInvalid", err)
		}
	})
	e.challenge(t, d)
	for _, tc := range []struct {
		name string
		auth func() string
	}{
		{"expired SAS", func() string { return d.sas(t, e.clock().Add(-time.Hour)) }},
		{"garbage SAS", func() string { return "SharedAccessSignature sr=x&sig=y&se=1" }},
		{"SAS for another resource", func() string {
			s := d.sas(t, e.clock().Add(time.Hour))
			return strings.Replace(s, "registrations", "registration", 1)
		}},
		{"SAS of the symmetric-key kind", func() string {
			return "SharedAccessSignature sr=" + url.QueryEscape(scope+"/registrations/"+d.regID) + "&sig=AAAA&se=" + fmt.Sprint(e.clock().Add(time.Hour).Unix())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.Register(ctx, &port.Request{IDScope: scope, RegistrationID: d.regID, TPM: d.body(), Authorization: tc.auth()})
			if !errors.Is(err, port.ErrUnauthorized) {
				t.Fatalf("Register = %v, want ErrUnauthorized", err)
			}
		})
	}
	t.Run("challenge expired", func(t *testing.T) {
		auth := d.sas(t, e.clock().Add(time.Hour))
		e.advance(tpmatt.DefaultChallengeTTL + time.Second)
		_, err := e.svc.Register(ctx, &port.Request{IDScope: scope, RegistrationID: d.regID, TPM: d.body(), Authorization: auth})
		if !errors.Is(err, port.ErrUnauthorized) {
			t.Fatalf("Register = %v, want ErrUnauthorized", err)
		}
	})
	t.Run("disabled enrollment", func(t *testing.T) {
		e.enroll(t, d.regID, d.tpm.EndorsementKey(), enrollment.StatusDisabled)
		e.challenge(t, d)
		op, err := e.svc.Register(ctx, &port.Request{IDScope: scope, RegistrationID: d.regID, TPM: d.body(), Authorization: d.sas(t, e.clock().Add(time.Hour))})
		if err != nil || op.Status != enrollment.RegistrationDisabled {
			t.Fatalf("Register = %+v, %v, want disabled", op, err)
		}
	})
}

// TestPendingBounded: a stranger replaying the device's public keys keeps
// at most MaxPending keys in the store.
func TestPendingBounded(t *testing.T) {
	e := newEnv(t)
	d := newDev(t)
	e.enroll(t, d.regID, d.tpm.EndorsementKey(), "")
	for range 10 {
		_, err := e.svc.Register(context.Background(), &port.Request{IDScope: scope, RegistrationID: d.regID, TPM: d.body()})
		if !errors.Is(err, port.ErrUnauthorized) {
			t.Fatal(err)
		}
	}
	c, err := tpmatt.Challenges(e.st.Backend, nil).Get(context.Background(), d.regID)
	if err != nil || len(c.Keys) != tpmatt.DefaultMaxPending {
		t.Fatalf("%d keys pending (%v), want %d", len(c.Keys), err, tpmatt.DefaultMaxPending)
	}
}
