package tpmatt_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/provisioning/tpmatt"
	"github.com/zdps/zdps/internal/sealed"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// With the store sealing secrets (as zdps serve runs), an issued challenge
// key is stored sealed, never in the clear, and still verifies round two.
func TestChallengeKeysSealedAtRest(t *testing.T) {
	box, err := sealed.New(bytes.Repeat([]byte{0x17}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *tpmatt.Config) {
		c.Store = store.New(c.Store.Backend, c.Now, store.WithSealer(box))
	})
	d := newDev(t)
	e.enroll(t, d.regID, d.tpm.EndorsementKey(), "")
	e.challenge(t, d)

	ch, err := tpmatt.Challenges(e.st.Backend, nil).Sealed(box).Get(context.Background(), d.regID)
	if err != nil || len(ch.Keys) != 1 || len(ch.Keys[0].Key) != 32 {
		t.Fatalf("challenge read back as %+v, %v", ch, err)
	}
	var raw []byte
	err = e.st.Backend.View(context.Background(), func(tx store.Tx) error {
		it, err := tx.Get(context.Background(), tpmatt.BucketChallenges, enrollment.Key(d.regID))
		raw = it.Value
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	k := ch.Keys[0].Key
	if bytes.Contains(raw, k) || bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString(k))) {
		t.Fatalf("challenge key in the clear at rest: %s", raw)
	}
	// The sealed form is base64 in the JSON, as the []byte field always was.
	if !bytes.Contains(raw, []byte(base64.StdEncoding.EncodeToString([]byte(sealed.Prefix))[:8])) {
		t.Fatalf("no sealed value stored: %s", raw)
	}
	// Without the KEK it does not read as a key.
	if _, err := tpmatt.Challenges(e.st.Backend, nil).Get(context.Background(), d.regID); err == nil {
		t.Fatal("a sealed challenge read without the KEK")
	}

	op, err := e.svc.Register(context.Background(), &port.Request{IDScope: scope, RegistrationID: d.regID, TPM: d.body(), Authorization: d.sas(t, e.clock().Add(time.Hour))})
	if err != nil || op.Status != enrollment.RegistrationAssigned {
		t.Fatalf("round two with a sealed challenge key: %+v, %v", op, err)
	}
}
