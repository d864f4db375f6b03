package tpmatt_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/zdps/zdps/attestation/tpm"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/provisioning/tpmatt"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// FuzzAttest drives the TPM attestor with arbitrary Authorization headers
// and tpm bodies against an enrolled EK with a pending challenge: no input
// panics, every refusal is ErrUnauthorized or ErrInvalid (a challenge is
// an ErrUnauthorized), and an Identity comes only from the challenge key.
func FuzzAttest(f *testing.F) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	st := store.New(memory.New(), func() time.Time { return now })
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek := tpm.EKTemplatePublic(&k.PublicKey)
	srk := tpm.MarshalRSAPublic(&k.PublicKey, tpm.SRKAttributes, nil)
	ek64, srk64 := base64.StdEncoding.EncodeToString(ek), base64.StdEncoding.EncodeToString(srk)
	if _, err := st.Enrollments.Put(ctx, &enrollment.IndividualEnrollment{RegistrationID: "dev", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationTPM, TPM: &enrollment.TPMAttestation{EndorsementKey: ek64}}}}, store.Condition{}); err != nil {
		f.Fatal(err)
	}
	a, err := tpmatt.New(tpmatt.Config{Store: st, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	// A pending challenge whose key the fuzzer knows (a fixed key in the
	// store, as round one would have left it).
	key := make([]byte, 32)
	sum := tpmattEKDigest(ek)
	if _, err := tpmatt.Challenges(st.Backend, nil).Put(ctx, &tpmatt.Challenge{RegistrationID: "dev", Keys: []tpmatt.ChallengeKey{{ID: "k", Key: key, EK: sum, ExpiresAt: now.Add(time.Minute)}}}, store.Condition{}); err != nil {
		f.Fatal(err)
	}
	good := sas.Build(key, "sc%2Fregistrations%2Fdev", "registration", now.Add(time.Hour))
	if _, err := a.Attest(ctx, &port.Request{IDScope: "sc", RegistrationID: "dev", Authorization: good}); err != nil {
		f.Fatalf("the seed SAS is refused: %v", err)
	}
	f.Add(good, ek64, srk64)
	f.Add(good, "", "")
	f.Add("", ek64, srk64)
	f.Add("SharedAccessSignature sr=sc/registrations/dev&sig=AAAA&se=1900000000", ek64, "AAAA")
	f.Add("SharedAccessSignature sr=%zz&sig=&se=-1", "!!", srk64)
	f.Fuzz(func(t *testing.T, auth, ekB64, srkB64 string) {
		req := &port.Request{IDScope: "sc", RegistrationID: "dev", Authorization: auth}
		if ekB64 != "" || srkB64 != "" {
			req.TPM = &enrollment.TPMAttestation{EndorsementKey: ekB64, StorageRootKey: srkB64}
		}
		id, err := a.Attest(ctx, req)
		if err != nil {
			if !errors.Is(err, port.ErrUnauthorized) && !errors.Is(err, port.ErrInvalid) {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		if _, isTPM := id.Evidence.(*port.TPMProof); auth == "" || !isTPM || id.Enrollment == nil {
			t.Fatalf("identity without a SAS: %+v", id)
		}
		tok, perr := sas.Parse(auth)
		if perr != nil || tok.VerifySignature(key) != nil {
			t.Fatal("identity for a SAS not signed with the challenge key")
		}
	})
}

// tpmattEKDigest is what the attestor stores as ChallengeKey.EK: SHA-256 of
// the EK's TPMT_PUBLIC.
func tpmattEKDigest(ek2b []byte) []byte {
	p, err := tpm.ParseEK(ek2b)
	if err != nil {
		panic(err)
	}
	d := sha256.Sum256(p.Raw)
	return d[:]
}
