package ca_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/ca/castate"
	"github.com/zdps/zdps/internal/ca/rotation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
)

func TestRotate(t *testing.T) {
	for _, tc := range []struct {
		name string
		kms  ca.KeyStore
	}{{"sealed to sealed", nil}, {"sealed to KMS", ca.NewMemKMS("pkcs11")}} {
		t.Run(tc.name, func(t *testing.T) {
			clock := ca.NewFakeClock(time.Now())
			cfg := ca.Config{Storage: ca.BackendStorage(memory.New()), KEK: ca.TestKEK(t), Now: clock.Now, KMS: tc.kms}
			c, err := ca.New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			before := ca.IssueTest(t, c, "dev-before")
			if changed, err := c.Reload(t.Context()); changed || err != nil {
				t.Fatalf("reload of an unchanged state: %v %v", changed, err)
			}
			var audited []rotation.Step
			r, err := rotation.Rotate(t.Context(), cfg, rotation.RotateOptions{Overlap: 48 * time.Hour, Audit: func(_ context.Context, _ store.Tx, s []rotation.Step) error {
				audited = append(audited, s...)
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			if len(audited) != 1 || audited[0].Action != "ca.rotate" || r.Generation != 1 || !r.Old.Equal(c.Intermediate()) {
				t.Fatalf("rotation %+v, audited %+v", r, audited)
			}
			// The running CA still issues from the old one until it reloads.
			if !c.Intermediate().Equal(r.Old) {
				t.Fatal("switched before the reload")
			}
			if changed, err := c.Reload(t.Context()); !changed || err != nil {
				t.Fatalf("reload: %v %v", changed, err)
			}
			if !c.Intermediate().Equal(r.New) || c.Generation() != 1 || c.KMS() != ca.KMSType(tc.kms) {
				t.Fatalf("after reload: generation %d, kms %q", c.Generation(), c.KMS())
			}
			after := ca.IssueTest(t, c, "dev-after")
			if err := after.CheckSignatureFrom(r.New); err != nil {
				t.Fatalf("not issued by the new intermediate: %v", err)
			}
			// Both verify against the published bundle during the overlap.
			ca.VerifyWithBundle(t, c, before)
			ca.VerifyWithBundle(t, c, after)
			prev := c.Previous()
			if len(prev) != 1 || !prev[0].Certificate.Equal(r.Old) || !prev[0].CanSignCRL || !prev[0].KeepUntil.Equal(r.KeepUntil) {
				t.Fatalf("previous: %+v", prev)
			}
			// The old one's CRL is still signed, by the old key.
			der, err := c.PreviousCRL(r.Old, nil, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			crl, _ := x509.ParseRevocationList(der)
			if crl == nil || crl.CheckSignatureFrom(r.Old) != nil {
				t.Fatal("the previous intermediate's CRL does not verify against it")
			}
			// A fresh process loads the rotated state.
			if again, err := ca.New(t.Context(), cfg); err != nil || !again.Intermediate().Equal(r.New) || len(again.Previous()) != 1 {
				t.Fatalf("New after rotation: %v", err)
			}

			// After the overlap, the next rotation retires it.
			clock.Set(clock.Now().Add(49 * time.Hour))
			audited = nil
			r2, err := rotation.Rotate(t.Context(), cfg, rotation.RotateOptions{Overlap: time.Hour, Audit: func(_ context.Context, _ store.Tx, s []rotation.Step) error {
				audited = append(audited, s...)
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			if len(audited) != 2 || audited[0].Action != "ca.retire" || audited[1].Action != "ca.rotate" || r2.Generation != 2 {
				t.Fatalf("second rotation audited %+v", audited)
			}
			if _, err := c.Reload(t.Context()); err != nil {
				t.Fatal(err)
			}
			if p := c.Previous(); len(p) != 1 || !p[0].Certificate.Equal(r.New) {
				t.Fatalf("after the second rotation, previous = %+v", p)
			}
		})
	}
}

// After a rotation, certificates name their own intermediate's CRL.
func TestRotatedCRLDistributionPoint(t *testing.T) {
	cfg := ca.Config{Storage: &ca.MapStorage{}, KEK: ca.TestKEK(t), CRLURL: "https://dps.example.net/crl"}
	c, err := ca.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := ca.IssueTest(t, c, "d0").CRLDistributionPoints; len(got) != 1 || got[0] != "https://dps.example.net/crl" {
		t.Fatalf("before any rotation: %v", got)
	}
	if _, err := rotation.Rotate(t.Context(), cfg, rotation.RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(c.Intermediate().Raw)
	want := "https://dps.example.net/crl?issuer=" + strings.ToUpper(hex.EncodeToString(sum[:]))
	if got := ca.IssueTest(t, c, "d1").CRLDistributionPoints; len(got) != 1 || got[0] != want {
		t.Fatalf("after a rotation: %v, want %s", got, want)
	}
}

func TestRotateRaceLosesCleanly(t *testing.T) {
	st := &ca.MapStorage{}
	cfg := ca.Config{Storage: st, KEK: ca.TestKEK(t)}
	if _, err := ca.New(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var won, lost atomic.Int32
	for range 4 {
		wg.Go(func() {
			_, err := rotation.Rotate(context.Background(), cfg, rotation.RotateOptions{})
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, ca.ErrStateChanged):
				lost.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won.Load() < 1 || won.Load()+lost.Load() != 4 {
		t.Fatalf("won %d lost %d", won.Load(), lost.Load())
	}
}

func TestRotateWithOfflineRoot(t *testing.T) {
	for _, tc := range []struct {
		name string
		kms  ca.KeyStore
	}{{"sealed", nil}, {"KMS", ca.NewMemKMS("pkcs11")}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ca.Config{Storage: &ca.MapStorage{}, KEK: ca.TestKEK(t), OfflineRoot: true, KMS: tc.kms}
			c, rootPEM, err := ca.Create(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			blk, _ := pem.Decode(rootPEM)
			k, _ := x509.ParsePKCS8PrivateKey(blk.Bytes)
			rootKey := k.(crypto.Signer)
			// Without the root key, a rotation needs the offline steps.
			if _, err := rotation.Rotate(t.Context(), cfg, rotation.RotateOptions{}); !errors.Is(err, ca.ErrInvalidCA) {
				t.Fatalf("err = %v", err)
			}
			csr, err := rotation.PrepareRotation(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			// The operator signs it away from the server.
			next, err := ca.SignIntermediate(c.Root(), rootKey, csr, 0, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			// A certificate for another key is refused.
			otherCSR := ca.MakeCSR(t, ca.TestKey(t, "p256"), "x", nil)
			other, err := ca.SignIntermediate(c.Root(), rootKey, otherCSR, 0, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rotation.Rotate(t.Context(), cfg, rotation.RotateOptions{Intermediate: other}); !errors.Is(err, ca.ErrInvalidCA) {
				t.Fatalf("certificate for another key: %v", err)
			}
			r, err := rotation.Rotate(t.Context(), cfg, rotation.RotateOptions{Intermediate: next})
			if err != nil {
				t.Fatal(err)
			}
			if !r.New.Equal(next) {
				t.Fatal("installed another certificate")
			}
			if _, err := c.Reload(t.Context()); err != nil {
				t.Fatal(err)
			}
			leaf := ca.IssueTest(t, c, "dev-next")
			if err := leaf.CheckSignatureFrom(next); err != nil {
				t.Fatalf("not issued by the offline-signed intermediate: %v", err)
			}
			ca.VerifyWithBundle(t, c, leaf)
			if c.KMS() != ca.KMSType(tc.kms) {
				t.Fatalf("kms %q", c.KMS())
			}
			// The state still holds no root key, and no pending key.
			st := cfg.Storage.(*ca.MapStorage).Blob()
			var s castate.State
			_ = json.Unmarshal(st, &s)
			if s.RootKey != nil || s.Pending != nil {
				t.Fatalf("root key %v, pending %v", s.RootKey != nil, s.Pending != nil)
			}
		})
	}
}

// Issuing while the CA reloads never mixes generations.
func TestReloadUnderIssuance(t *testing.T) {
	cfg := ca.Config{Storage: &ca.MapStorage{}, KEK: ca.TestKEK(t)}
	c, err := ca.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				leaf := ca.IssueTest(t, c, "dev")
				ok := false
				for _, cert := range ca.ParsePEMCerts(t, c.BundlePEM()) {
					if leaf.CheckSignatureFrom(cert) == nil {
						ok = true
					}
				}
				if !ok {
					t.Error("a leaf verifies against no intermediate of the bundle")
				}
			}
		})
	}
	for range 3 {
		if _, err := rotation.Rotate(t.Context(), cfg, rotation.RotateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
}

// Site CAs keep chaining after an intermediate rotation and a root
// rotation: every intermediate and root zdps makes allows them.
func TestSignSiteCAAfterRotations(t *testing.T) {
	cfg := ca.Config{Storage: ca.BackendStorage(memory.New()), KEK: ca.TestKEK(t)}
	c, err := ca.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check := func(step string) {
		t.Helper()
		if _, err := c.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
		is, err := c.SignSiteCA(ca.SiteCSR(t, key), ca.SiteCAPolicy{Site: "plant", Gateway: "gw"})
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		leaf, _ := ca.SignBelow(t, is.Certificate, key, pkix.Name{Organization: []string{"zdps-site-plant"}, CommonName: "dev"}, false)
		root := ca.MustParse(t, is.Chain[len(is.Chain)-1])
		if out, ok := ca.OpensslVerify(t, root, []*x509.Certificate{is.Certificate, ca.MustParse(t, is.Chain[1])}, leaf); !ok {
			t.Fatalf("%s: openssl verify:\n%s", step, out)
		}
	}
	check("created")
	if _, err := rotation.Rotate(t.Context(), cfg, rotation.RotateOptions{Overlap: time.Hour}); err != nil {
		t.Fatal(err)
	}
	check("intermediate rotated")
	if _, err := rotation.RotateRoot(t.Context(), cfg, rotation.RotateOptions{Overlap: time.Hour}); err != nil {
		t.Fatal(err)
	}
	check("root rotated")
}

// A delegated CA (an edge gateway's) never rotates.
func TestDelegatedNeverRotates(t *testing.T) {
	central, _ := ca.NewTestCA(t, nil)
	_, cfg := ca.Delegate(t, central, "plant-1", nil)
	if _, err := rotation.Rotate(t.Context(), cfg, rotation.RotateOptions{}); !errors.Is(err, ca.ErrDelegated) {
		t.Fatalf("Rotate: %v, want ErrDelegated", err)
	}
}
