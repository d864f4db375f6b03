package replicas

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/bench"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/enrollment"
)

// fiveXX finds an answer with a 5xx status in a server's JSON request log.
var fiveXX = regexp.MustCompile(`"status":5\d\d`)

// TestDeletesAndDisableUnderLoad is the contention case of the PostgreSQL
// backend: 1,000 concurrent DELETE /registrations/{id}, spread over two
// replicas, while a group's devices register and the group is disabled.
// No request answers a 5xx (503 included), every certificate of a deleted
// record is revoked, and so is every certificate the group's devices were
// handed once the disable's revocation job is done.
func TestDeletesAndDisableUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real servers under load")
	}
	c := newCluster(t)
	a, b := c.start(t), c.start(t)
	bin := zdpstest.Binary(t)
	const devices = 1000
	run := func(args ...string) (*bench.Report, error) {
		cmd := exec.Command(bin, append([]string{"bench", "--data-dir", a.DataDir, "--endpoint", a.Addr(), "--endpoint", b.Addr(), "-o", "json"}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var r bench.Report
		if jerr := json.Unmarshal(stdout.Bytes(), &r); jerr != nil {
			return nil, fmt.Errorf("bench %v: %v\n%s", err, jerr, stderr.String())
		}
		return &r, err
	}
	if r, err := run("--setup", "--prefix", "del", "--devices", fmt.Sprint(devices), "--concurrency", "64"); err != nil || r.Succeeded != devices {
		t.Fatalf("registering %d devices: %v %+v", devices, err, r)
	}

	// A group's devices register meanwhile; the group is disabled half-way.
	var load *bench.Report
	var loadErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		load, loadErr = run("--setup", "--attestation", "symmetric-group", "--prefix", "grp", "--devices", "600", "--concurrency", "32")
	}()

	ctx := context.Background()
	ca, cb := a.Client(), b.Client()
	errs := make([]error, devices)
	var dw sync.WaitGroup
	for i := range devices {
		dw.Add(1)
		go func() {
			defer dw.Done()
			cl := ca
			if i%2 == 1 {
				cl = cb
			}
			errs[i] = cl.DeleteRegistration(ctx, fmt.Sprintf("del-%07d", i), "")
		}()
	}
	// Disable the group once its devices are registering.
	deadline := time.Now().Add(time.Minute)
	for {
		if g, err := ca.GetGroup(ctx, "grp"); err == nil {
			if recs, _, err := ca.QueryRegistrations(ctx, "grp", 1, ""); err == nil && len(recs) > 0 {
				g.ProvisioningStatus = enrollment.StatusDisabled
				if _, err := ca.PutGroup(ctx, g, g.ETag); err != nil {
					t.Fatalf("disable the group: %v", err)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the group's devices never registered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	dw.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("DELETE del-%07d: %v", i, err)
		}
	}
	wg.Wait()
	if load == nil {
		t.Fatalf("group load: %v", loadErr)
	}
	for kind := range load.Errors {
		if regexp.MustCompile(`^http-5`).MatchString(kind) {
			t.Errorf("a group device was answered %s: %s", kind, load.ErrorSamples[kind])
		}
	}
	for _, s := range []*zdpstest.Server{a, b} {
		if m := fiveXX.FindString(s.Logs()); m != "" {
			t.Errorf("a replica answered %s", m)
		}
	}

	// Every certificate is revoked: the deleted records' at once, the
	// group's once its revocation job is done.
	pg := c.backend(t)
	certs := revocation.Certificates(pg, nil)
	deadline = time.Now().Add(2 * time.Minute)
	for {
		all, err := certs.All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		unrevoked := 0
		for _, cert := range all {
			if !cert.Revoked() {
				unrevoked++
			}
		}
		if unrevoked == 0 && len(all) >= devices {
			t.Logf("%d certificates, all revoked; group load: %d registered, errors %v", len(all), load.Succeeded, load.Errors)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d certificates not revoked", unrevoked, len(all))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
