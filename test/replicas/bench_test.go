package replicas

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"testing"

	"github.com/zdps/zdps/internal/bench"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/zdpstest"
)

// TestBenchOverTwoReplicas runs `zdps bench` with two --endpoint flags
// against two replicas of one database: the devices are spread evenly,
// the report has figures per endpoint and the store's counters (read from
// both replicas' /metrics), and --cleanup leaves no enrollment or record
// behind, with every certificate the run was issued revoked.
func TestBenchOverTwoReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real servers")
	}
	c := newCluster(t)
	a, b := c.start(t), c.start(t)
	const devices = 120
	r := runBench(t, "--data-dir", a.DataDir, "--endpoint", a.Addr(), "--endpoint", b.Addr(),
		"--server-pid", fmt.Sprintf("%d,%d", a.PID(), b.PID()), "--devices", fmt.Sprint(devices), "--concurrency", "24",
		"--setup", "--cleanup", "--prefix", "two")
	if r.Succeeded != devices || r.Failed != 0 {
		t.Fatalf("succeeded %d, failed %d: %v", r.Succeeded, r.Failed, r.ErrorSamples)
	}
	if len(r.PerEndpoint) != 2 {
		t.Fatalf("per endpoint: %+v", r.PerEndpoint)
	}
	for i, want := range []string{a.Addr(), b.Addr()} {
		e := r.PerEndpoint[i]
		if e.Endpoint != want || e.Succeeded != devices/2 || e.RegistrationsPerSecond <= 0 || e.LatencyMs.P50 <= 0 {
			t.Errorf("endpoint %d: %+v, want %s with %d devices", i, e, want, devices/2)
		}
	}
	if r.CPU.ServerPID != a.PID() || len(r.CPU.ServerPIDs) != 1 || r.CPU.ServerMsPerRegistration <= 0 {
		t.Errorf("server CPU %+v", r.CPU)
	}
	if r.Store == nil || r.Store.RoundTripsPerRegistration <= 0 || r.Store.ReadFromMetricsOfEndpoints != 2 {
		t.Fatalf("store figures %+v", r.Store)
	}
	t.Logf("store per registration: %.1f round trips, %.3f retries, %.3f conflicts",
		r.Store.RoundTripsPerRegistration, r.Store.RetriesPerRegistration, r.Store.ConflictsPerRegistration)
	if r.Store.StatementsPerRegistration < r.Store.RoundTripsPerRegistration {
		t.Errorf("statements per registration %.1f, fewer than its round trips: the endpoints' sum lost them", r.Store.StatementsPerRegistration)
	}

	// Nothing of the run is left but revoked certificates (kept for the CRL).
	pg := c.backend(t)
	ctx := context.Background()
	for _, bucket := range []store.Bucket{store.BucketEnrollments, store.BucketRegistrations, store.IndexRegistrationsByHub} {
		if n := count(t, pg, bucket); n != 0 {
			t.Errorf("%s: %d left after cleanup", bucket, n)
		}
	}
	certs := revocation.Certificates(pg, nil)
	all, err := certs.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != devices {
		t.Errorf("%d certificates stored, want %d", len(all), devices)
	}
	for _, cert := range all {
		if !cert.Revoked() {
			t.Errorf("certificate %s of %s not revoked after cleanup", cert.Serial, cert.RegistrationID)
		}
	}
}

func count(t *testing.T, b store.Backend, bucket store.Bucket) int {
	t.Helper()
	var n int
	if err := b.View(t.Context(), func(tx store.Tx) error {
		items, err := tx.Scan(t.Context(), bucket, "", "", 0)
		n = len(items)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRegistrationCost registers devices one at a time on one replica
// (so that none goes to the background, whatever the machine's load) and
// bounds what each cost the database: three round trips (the request's
// reads in one batch; BEGIN with the transaction's reads; its writes with
// the COMMIT) and nine statements (the three reads; BEGIN, the
// enrollment's lock, the record, revocation jobs and operations as one;
// the writes as two; COMMIT). The background work (the audit sealer, the
// CRL publisher) adds to both, more on a loaded machine, where the run is
// longer: the bounds leave room for it and still fail a registration of
// four round trips or eleven statements.
func TestRegistrationCost(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real server")
	}
	c := newCluster(t)
	a := c.start(t)
	r := runBench(t, "--data-dir", a.DataDir, "--endpoint", a.Addr(),
		"--devices", "100", "--concurrency", "1", "--setup", "--cleanup", "--prefix", "cost")
	if r.Succeeded != 100 || r.Store == nil {
		t.Fatalf("succeeded %d, store figures %+v", r.Succeeded, r.Store)
	}
	s := r.Store
	t.Logf("per registration: %.2f round trips, %.2f statements", s.RoundTripsPerRegistration, s.StatementsPerRegistration)
	if s.RoundTripsPerRegistration < 3 || s.RoundTripsPerRegistration >= 4 {
		t.Errorf("%.2f round trips per registration, want 3 (and a little)", s.RoundTripsPerRegistration)
	}
	if s.StatementsPerRegistration < 9 || s.StatementsPerRegistration >= 11 {
		t.Errorf("%.2f statements per registration, want 9 (and a little)", s.StatementsPerRegistration)
	}
}

// runBench runs zdps bench with args and its JSON report, failing the test
// when it fails.
func runBench(t *testing.T, args ...string) bench.Report {
	t.Helper()
	cmd := exec.Command(zdpstest.Binary(t), append(append([]string{"bench"}, args...), "-o", "json")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("zdps bench: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var r bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	return r
}
