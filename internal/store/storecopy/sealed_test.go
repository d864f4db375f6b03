package storecopy_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"

	"github.com/zdps/zdps/internal/sealed"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/storecopy"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/enrollment"
)

// The copy moves sealed secrets byte for byte: the destination holds no
// key in the clear either, and opens them under the same KEK, because the
// associated data names the record and field, not the store. Under another
// KEK they do not open.
func TestCopyKeepsSecretsSealed(t *testing.T) {
	ctx := t.Context()
	kek := bytes.Repeat([]byte{0x42}, 32)
	box, err := sealed.New(kek)
	if err != nil {
		t.Fatal(err)
	}
	src, mid, back := testbackend.Bolt(t), testbackend.Postgres(t), testbackend.Bolt(t)
	s := store.New(src, nil, store.WithSealer(box))
	keys := map[string]string{}
	for i := range 20 {
		k := make([]byte, 64)
		for j := range k {
			k[j] = byte(i*64 + j)
		}
		id := fmt.Sprintf("sealed-%02d", i)
		keys[id] = base64.StdEncoding.EncodeToString(k)
		e := &enrollment.IndividualEnrollment{RegistrationID: id, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
			Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: keys[id]}}}}
		if _, err := s.Enrollments.Put(ctx, e, store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := storecopy.Copy(ctx, mid, src, storecopy.Config{BatchSize: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := storecopy.Copy(ctx, back, mid, storecopy.Config{BatchSize: 7}); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]store.Backend{"postgres": mid, "bolt": back} {
		t.Run(name, func(t *testing.T) {
			err := b.View(ctx, func(tx store.Tx) error {
				items, err := tx.Scan(ctx, store.BucketEnrollments, "", "", 0)
				if err != nil {
					return err
				}
				if len(items) != len(keys) {
					t.Fatalf("%d enrollments copied, want %d", len(items), len(keys))
				}
				for _, it := range items {
					k := keys[it.Key]
					raw, _ := base64.StdEncoding.DecodeString(k)
					if bytes.Contains(it.Value, []byte(k)) || bytes.Contains(it.Value, raw) {
						t.Errorf("%s: key in the clear after the copy", it.Key)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			d := store.New(b, nil, store.WithSealer(box))
			for id, k := range keys {
				e, err := d.Enrollments.Get(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if e.Attestation.SymmetricKey.PrimaryKey != k {
					t.Fatalf("%s: key %q after the copy, want %q", id, e.Attestation.SymmetricKey.PrimaryKey, k)
				}
			}
			other, _ := sealed.New(bytes.Repeat([]byte{0x43}, 32))
			if _, err := store.New(b, nil, store.WithSealer(other)).Enrollments.Get(ctx, "sealed-00"); !errors.Is(err, store.ErrUnsealable) {
				t.Fatalf("Get under another KEK: %v, want ErrUnsealable", err)
			}
		})
	}
}
