package caissuer_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/provisioning/caissuer"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store/memory"
)

// TestExpiredCAIsUnavailable: a CA that is not valid now (an edge
// gateway's delegated CA that expired offline) is no fault of the
// device: the pipeline sees ErrUnavailable (503, retried), not a bare
// error (500).
func TestExpiredCAIsUnavailable(t *testing.T) {
	var now atomic.Pointer[time.Time]
	start := time.Now()
	now.Store(&start)
	c, err := ca.New(context.Background(), ca.Config{Storage: ca.BackendStorage(memory.New()), KEK: bytes.Repeat([]byte{7}, 32), Now: func() time.Time { return *now.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	later := start.Add(20 * 365 * 24 * time.Hour) // past the intermediate's validity
	now.Store(&later)
	iss, err := caissuer.New(c)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-1"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	_, err = iss.Issue(context.Background(), csr, port.LeafPolicy{RegistrationID: "dev-1", DeviceID: "dev-1", Validity: time.Hour})
	if !errors.Is(err, port.ErrUnavailable) || !errors.Is(err, ca.ErrCAExpired) {
		t.Fatalf("err %v, want ErrUnavailable wrapping ErrCAExpired", err)
	}
}
