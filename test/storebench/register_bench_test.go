// Package storebench measures device registration throughput through the
// real pipeline (SAS verification, hashed allocation over 50 hubs, CSR
// signing by the embedded CA, registration record + certificate +
// operation written in the store) on each store backend:
//
//	go test -run '^$' -bench . -benchtime 2000x ./test/storebench
//
// ops/s is registrations per second. The PostgreSQL benchmarks need
// $ZDPS_TEST_POSTGRES (see internal/pgtest); "2replicas" runs two
// pipelines on two connection pools over one schema, as two zdps
// processes would.
package storebench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/attestation/symmetric"
	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/pgtest"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/caissuer"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/provisioning/symkey"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/store/postgres"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

const scope = "0ne00000001"

var groupKey = []byte("0123456789abcdef0123456789abcdef")

// seed writes the group, 50 hubs and nothing else.
func seed(b *testing.B, st *store.Store) {
	ctx := context.Background()
	k := base64.StdEncoding.EncodeToString(groupKey)
	sym := &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: k, SecondaryKey: k}}
	if _, err := st.Groups.Put(ctx, &enrollment.EnrollmentGroup{EnrollmentGroupID: "fleet", Spec: enrollment.Spec{Attestation: sym}}, store.Condition{}); err != nil {
		b.Fatal(err)
	}
	for i := range 50 {
		if _, err := st.Hubs.Put(ctx, &enrollment.Hub{Name: fmt.Sprintf("hub-%02d.example.net", i), AllocationWeight: 1 + i%5}, store.Condition{}); err != nil {
			b.Fatal(err)
		}
	}
}

// pipeline builds the registration service on be, with a CA kept in be.
func pipeline(b *testing.B, be store.Backend, kek []byte) *provisioning.Service {
	st := store.New(be, nil)
	authority, err := ca.New(context.Background(), ca.Config{Storage: ca.BackendStorage(be), KEK: kek, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	issuer, err := caissuer.New(authority)
	if err != nil {
		b.Fatal(err)
	}
	att, err := symkey.NewAttestor(st, symmetric.Config{})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := provisioning.New(provisioning.Config{
		Store:     st,
		Attestors: map[string]port.Attestor{enrollment.AttestationSymmetricKey: att},
		Allocator: hashed.New(),
		Issuer:    issuer,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	return svc
}

var csrKey = func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}()

func request(b *testing.B, run string, i int, withCSR bool) *port.Request {
	id := fmt.Sprintf("bench-%s-%07d", run, i)
	r := &port.Request{
		IDScope: scope, RegistrationID: id,
		Authorization: sas.Build(sas.DeriveDeviceKey(groupKey, id), scope+"/registrations/"+id, "registration", time.Now().Add(time.Hour)),
	}
	if withCSR {
		// One device key for all: the CSR's signature is what costs, not
		// generating keys, and the server issues a new serial each time.
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, csrKey)
		if err != nil {
			b.Fatal(err)
		}
		r.CSR = csr
	}
	return r
}

var runs atomic.Int64

// run registers b.N distinct devices, serially or from 64 goroutines
// spread over the given pipelines.
func run(b *testing.B, svcs []*provisioning.Service, parallel, withCSR bool) {
	ctx := context.Background()
	name := fmt.Sprint(runs.Add(1))
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		for i := 0; b.Loop(); i++ {
			if _, err := svcs[i%len(svcs)].Register(ctx, request(b, name, i, withCSR)); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		var next atomic.Int64
		b.SetParallelism(32) // 32 per CPU, like concurrent device requests
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(next.Add(1))
				if _, err := svcs[i%len(svcs)].Register(ctx, request(b, name, i, withCSR)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkRegister(b *testing.B) {
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	openBolt := func(b *testing.B) []store.Backend {
		be, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), bolt.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { be.Close() })
		return []store.Backend{be}
	}
	openPostgres := func(replicas int) func(b *testing.B) []store.Backend {
		return func(b *testing.B) []store.Backend {
			url, schema := pgtest.Schema(b)
			var out []store.Backend
			for range replicas {
				be, err := postgres.Open(context.Background(), url, postgres.Options{Schema: schema})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { be.Close() })
				out = append(out, be)
			}
			return out
		}
	}
	for _, backend := range []struct {
		name string
		open func(b *testing.B) []store.Backend
	}{
		{"bolt", openBolt},
		{"postgres", openPostgres(1)},
		{"postgres-2replicas", openPostgres(2)},
	} {
		for _, mode := range []struct {
			name              string
			parallel, withCSR bool
		}{
			{"serial", false, false},
			{"parallel", true, false},
			{"parallel-csr", true, true},
		} {
			b.Run(backend.name+"/"+mode.name, func(b *testing.B) {
				bes := backend.open(b)
				seed(b, store.New(bes[0], nil))
				var svcs []*provisioning.Service
				for _, be := range bes {
					svcs = append(svcs, pipeline(b, be, kek))
				}
				run(b, svcs, mode.parallel, mode.withCSR)
				var retries int64
				for _, be := range bes {
					if pg, ok := be.(*postgres.Backend); ok {
						retries += pg.Retries()
					}
				}
				b.ReportMetric(float64(retries)/float64(b.N), "retries/op")
			})
		}
	}
}
