// Package replicas tests several zdps serve processes sharing one
// PostgreSQL database: what one replica writes, the other serves; the CA,
// the ID scope and the owner policy are shared; concurrent writers across
// replicas are serialized by the database.
//
// They need PostgreSQL ($ZDPS_TEST_POSTGRES, see internal/pgtest) and fail
// when it does not answer; ZDPS_TEST_POSTGRES=off skips them.
package replicas

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/pgtest"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store/postgres"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

// cluster is replicas on one database schema with one KEK.
type cluster struct {
	url, schema, storeURL, kekFile string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	url, schema := pgtest.Schema(t)
	c := &cluster{url: url, schema: schema, storeURL: pgtest.StoreURL(url, schema)}
	c.kekFile = writeKEK(t)
	return c
}

func writeKEK(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	path := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// start runs one more replica.
func (c *cluster) start(t *testing.T, extra ...string) *zdpstest.Server {
	t.Helper()
	return zdpstest.Start(t, append([]string{"--store", c.storeURL, "--kek-file", c.kekFile}, extra...)...)
}

// backend opens the cluster's database directly, to check what is stored.
func (c *cluster) backend(t *testing.T) *postgres.Backend {
	t.Helper()
	b, err := postgres.Open(t.Context(), c.url, postgres.Options{Schema: c.schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func decode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSharedInstance(t *testing.T) {
	c := newCluster(t)
	a := c.start(t)
	// The second one is configured through the environment, as a
	// container would be.
	t.Setenv("ZDPS_STORE", c.storeURL)
	t.Setenv("ZDPS_KEK_FILE", c.kekFile)
	b := zdpstest.Start(t)
	if sa, sb := a.IDScope(), b.IDScope(); sa != sb {
		t.Errorf("ID scopes %s and %s", sa, sb)
	}
	ba, _ := os.ReadFile(a.CAFile())
	bb, _ := os.ReadFile(b.CAFile())
	if len(ba) == 0 || string(ba) != string(bb) {
		t.Error("the replicas have different CA bundles")
	}
	if ca, cb := a.ConnectionString(), b.ConnectionString(); keyOf(ca) != keyOf(cb) {
		t.Error("the replicas have different owner keys")
	}
	// A document written through one is read through the other.
	ctx := t.Context()
	if _, err := a.Client().PutHub(ctx, &enrollment.Hub{Name: "hub-1.example.net", AllocationWeight: 1}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Client().GetHub(ctx, "hub-1.example.net"); err != nil {
		t.Fatalf("hub written on A, read on B: %v", err)
	}
}

func keyOf(conn string) string {
	_, k, _ := strings.Cut(conn, "SharedAccessKey=")
	return k
}

// A replica given another KEK must refuse to start, not create a second
// CA beside the shared one.
func TestReplicaWithOtherKEKRefuses(t *testing.T) {
	c := newCluster(t)
	a := c.start(t)
	want, err := a.Client().GetCA(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, zdpstest.Binary(t), "serve", "--mqtt-listen", "off", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0",
		"--store", c.storeURL, "--kek-file", writeKEK(t))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("zdps serve with another KEK: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "same key-encryption key") {
		t.Errorf("error does not say the KEK must be shared:\n%s", out)
	}
	got, err := a.Client().GetCA(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("CA changed: %+v, was %+v", got, want)
	}
}

// Replicas starting together create one CA: create-if-absent in the
// database, the losers load the winner's.
func TestConcurrentCACreation(t *testing.T) {
	c := newCluster(t)
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	const n = 8
	bundles := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		b := c.backend(t) // one pool per "replica"
		wg.Go(func() {
			<-gate
			auth, err := ca.New(t.Context(), ca.Config{Storage: ca.BackendStorage(b), KEK: kek})
			if err != nil {
				errs[i] = err
				return
			}
			bundles[i] = string(auth.BundlePEM())
		})
	}
	close(gate)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i := range bundles {
		if bundles[i] != bundles[0] {
			t.Fatalf("replica %d has another CA", i)
		}
	}
}

// routeTransport sends every request after the first to another replica:
// the device registers on one and polls its operation on the other.
type routeTransport struct {
	base     http.RoundTripper
	other    string
	n        atomic.Int64
	rerouted atomic.Int64
}

func (rt *routeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if rt.n.Add(1) > 1 {
		r = r.Clone(r.Context())
		r.URL.Host = rt.other
		r.Host = rt.other
		rt.rerouted.Add(1)
	}
	return rt.base.RoundTrip(r)
}

func TestRegisterOnOnePollOnOther(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(t, "--azure-202"), c.start(t)
	ctx := t.Context()
	cl := a.Client()
	if _, err := cl.PutHub(ctx, &enrollment.Hub{Name: "hub-1.example.net", AllocationWeight: 1}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutEnrollment(ctx, &enrollment.IndividualEnrollment{
		RegistrationID: "poller", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := cl.EnrollmentKeys(ctx, "poller")
	if err != nil {
		t.Fatal(err)
	}
	rt := &routeTransport{base: a.HTTPClient().Transport, other: b.Addr()}
	res, err := device.Register(ctx, device.Config{
		Endpoint: a.Addr(), IDScope: a.IDScope(), RegistrationID: "poller",
		SymmetricKey: decode(t, keys.SymmetricKey.PrimaryKey), GenerateKey: true, MaxWait: time.Minute,
		HTTPClient: &http.Client{Transport: rt, Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	})
	if err != nil {
		t.Fatalf("%v\nA:\n%s\nB:\n%s", err, a.Logs(), b.Logs())
	}
	if rt.rerouted.Load() == 0 {
		t.Fatal("the device never polled the second replica (A answered without 202?)")
	}
	if res.AssignedHub != "hub-1.example.net" || res.OperationID == "" || len(res.IssuedCertificateChain) == 0 {
		t.Fatalf("result %+v", res)
	}
	rec, err := b.Client().GetRegistration(ctx, "poller")
	if err != nil || rec.Status != "assigned" || rec.AssignedHub != res.AssignedHub {
		t.Fatalf("registration record on B: %+v, %v", rec, err)
	}
}

func TestConcurrentRegistrationsAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("500 registrations")
	}
	const devices = 500
	c := newCluster(t)
	a, b := c.start(t, "--azure-202"), c.start(t)
	ctx := t.Context()
	cl := a.Client()
	hubs := map[string]bool{"hub-1.example.net": true, "hub-2.example.net": true}
	for h := range hubs {
		if _, err := cl.PutHub(ctx, &enrollment.Hub{Name: h, AllocationWeight: 1}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.PutGroup(ctx, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "fleet", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	gk, err := cl.GroupKeys(ctx, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	groupKey := decode(t, gk.SymmetricKey.PrimaryKey)
	scope := a.IDScope()
	replicas := []*zdpstest.Server{a, b}
	results := make([]*device.Result, devices)
	errs := make([]error, devices)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	start := time.Now()
	for i := range devices {
		srv := replicas[i%2]
		wg.Go(func() {
			<-gate
			results[i], errs[i] = device.Register(ctx, device.Config{
				Endpoint: srv.Addr(), IDScope: scope, RegistrationID: fmt.Sprintf("fleet-%03d", i),
				GroupKey: groupKey, GenerateKey: true, RootCAs: srv.RootCAs(), MaxWait: 2 * time.Minute,
			})
		})
	}
	close(gate)
	wg.Wait()
	t.Logf("%d registrations across 2 replicas in %v", devices, time.Since(start).Round(time.Millisecond))
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("%v\nA:\n%s", err, tail(a.Logs()))
	}

	// Every device got a certificate with a serial of its own.
	serials := map[string]string{}
	for i, r := range results {
		id := fmt.Sprintf("fleet-%03d", i)
		if r.Status != "assigned" || r.DeviceID != id || !hubs[r.AssignedHub] || len(r.IssuedCertificateChain) == 0 {
			t.Fatalf("device %d: %+v", i, r)
		}
		s := r.IssuedCertificateChain[0].SerialNumber.Text(16)
		if other, dup := serials[s]; dup {
			t.Fatalf("serial %s issued to %s and %s", s, other, id)
		}
		serials[s] = id
	}

	// The records agree with what the devices were told, seen from either
	// replica.
	for _, srv := range replicas {
		n := 0
		for rec, err := range srv.Client().Registrations(ctx, "fleet", 100) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			var i int
			if _, err := fmt.Sscanf(rec.RegistrationID, "fleet-%03d", &i); err != nil || i >= devices {
				t.Fatalf("unexpected record %+v", rec)
			}
			if r := results[i]; rec.Status != "assigned" || rec.DeviceID != r.DeviceID || rec.AssignedHub != r.AssignedHub {
				t.Fatalf("record %+v, device was told %+v", rec, r)
			}
		}
		if n != devices {
			t.Fatalf("%s lists %d registrations, want %d", srv.Addr(), n, devices)
		}
	}

	// The database holds exactly those certificates, one per device.
	certs := revocation.Certificates(c.backend(t), nil)
	stored := 0
	next := ""
	for {
		page, cont, err := certs.List(ctx, next, 200)
		if err != nil {
			t.Fatal(err)
		}
		for _, cert := range page {
			stored++
			if serials[strings.TrimLeft(strings.ToLower(cert.Serial), "0")] != cert.RegistrationID {
				t.Fatalf("stored certificate %s for %s was not issued to that device", cert.Serial, cert.RegistrationID)
			}
		}
		if cont == "" {
			break
		}
		next = cont
	}
	if stored != devices {
		t.Fatalf("%d certificates stored, want %d", stored, devices)
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

// If-Match across replicas: of 100 updates holding the same ETag, half
// sent to each replica, exactly one wins.
func TestIfMatchAcrossReplicas(t *testing.T) {
	c := newCluster(t)
	a, b := c.start(t), c.start(t)
	ctx := t.Context()
	clients := []*client.Client{a.Client(), b.Client()}
	e, err := clients[0].PutEnrollment(ctx, &enrollment.IndividualEnrollment{
		RegistrationID: "contended", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	var won, refused atomic.Int64
	var mu sync.Mutex
	var other []error
	var winner string
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-gate
			upd := &enrollment.IndividualEnrollment{
				RegistrationID: "contended",
				DeviceID:       fmt.Sprintf("writer-%03d", i), Spec: enrollment.Spec{Attestation: e.Attestation},
			}
			_, err := clients[i%2].PutEnrollment(ctx, upd, e.ETag)
			var apiErr *client.APIError
			switch {
			case err == nil:
				won.Add(1)
				mu.Lock()
				winner = upd.DeviceID
				mu.Unlock()
			case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusPreconditionFailed:
				refused.Add(1)
			default:
				mu.Lock()
				other = append(other, err)
				mu.Unlock()
			}
		})
	}
	close(gate)
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("unexpected errors: %v", errors.Join(other...))
	}
	if won.Load() != 1 || refused.Load() != n-1 {
		t.Fatalf("%d succeeded, %d refused with 412; want 1 and %d", won.Load(), refused.Load(), n-1)
	}
	for _, cl := range clients {
		got, err := cl.GetEnrollment(ctx, "contended")
		if err != nil || got.DeviceID != winner {
			t.Fatalf("stored %+v, %v; want the winner %s", got, err, winner)
		}
	}
}
