package robustness

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/pgtest"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

// revocationExtraArgs are added to `zdps serve` by TestRevocationRace: its
// devices re-register in a tight loop on purpose.
var revocationExtraArgs = []string{"--throttle-register", "off"}

// revocationRuns is how many times each case runs per backend, each with
// the change at another moment of the load.
const revocationRuns = 5

// TestRevocationRace proves that no certificate escapes revocation: while
// devices register in a loop, their enrollments are deleted or disabled,
// or their group is disabled; once every change has answered, every
// certificate any device was handed is on the CRL. On bbolt and
// PostgreSQL, five runs per case, the change landing at a different
// moment of the load each time.
func TestRevocationRace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real servers under registration load")
	}
	for _, backend := range []string{"bolt", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			args := append([]string(nil), revocationExtraArgs...)
			if backend == "postgres" {
				url, schema := pgtest.Schema(t)
				args = append(args, "--store", pgtest.StoreURL(url, schema))
			}
			srv := zdpstest.Start(t, args...)
			c := srv.Client()
			if _, err := c.PutHub(t.Context(), &enrollment.Hub{Name: "hub-1.example.net", AllocationWeight: 1}, ""); err != nil {
				t.Fatal(err)
			}
			for _, kind := range []string{"delete", "disable", "group-disable"} {
				t.Run(kind, func(t *testing.T) {
					var issued, unrevoked, refused int
					for run := range revocationRuns {
						// The change lands after 150 ms to 750 ms of load.
						delay := time.Duration(150+150*run) * time.Millisecond
						r := raceRun(t, srv, c, fmt.Sprintf("%s-%d", kind, run), kind, delay)
						issued, unrevoked, refused = issued+r.issued, unrevoked+len(r.unrevoked), refused+r.refused
						if len(r.unrevoked) > 0 {
							t.Errorf("run %d: %d of %d certificates not on the CRL after the %s answered: %v", run, len(r.unrevoked), r.issued, kind, r.unrevoked)
						}
					}
					t.Logf("%s on %s: %d runs, %d certificates issued, %d unrevoked, %d registrations refused after the change", kind, backend, revocationRuns, issued, unrevoked, refused)
					if issued < revocationRuns {
						t.Errorf("only %d certificates issued in %d runs: the load did not run", issued, revocationRuns)
					}
				})
			}
			// Contention is answered 503 and logged WARN; nothing here is
			// a server fault.
			for _, line := range strings.Split(srv.Logs(), "\n") {
				if strings.Contains(line, `"level":"ERROR"`) {
					t.Errorf("ERROR logged: %s", line)
				}
			}
		})
	}
}

type raceResult struct {
	issued, refused int
	unrevoked       []string
}

// raceRun registers devices in a loop, applies the change after delay,
// waits for it to answer, stops the devices and compares every
// certificate they were handed with the CRL.
func raceRun(t *testing.T, srv *zdpstest.Server, c *client.Client, name, kind string, delay time.Duration) raceResult {
	t.Helper()
	ctx := t.Context()
	var devices []device.Config
	var change func() error
	base := device.Config{Endpoint: srv.Addr(), IDScope: srv.IDScope(), RootCAs: srv.RootCAs(), GenerateKey: true, MaxRetries: 1, MaxWait: 10 * time.Second}
	switch kind {
	case "delete", "disable":
		// 16 devices of individual enrollments, each re-registering.
		var ids []string
		for i := range 16 {
			id := fmt.Sprintf("%s-dev-%02d", name, i)
			cfg := base
			cfg.RegistrationID, cfg.SymmetricKey = id, raceEnrollment(t, c, id)
			devices, ids = append(devices, cfg), append(ids, id)
		}
		change = func() error {
			return forEach(ids, func(id string) error {
				if kind == "delete" {
					return c.DeleteEnrollment(ctx, id, "")
				}
				e, err := c.GetEnrollment(ctx, id)
				if err != nil {
					return err
				}
				e.ProvisioningStatus = enrollment.StatusDisabled
				_, err = c.PutEnrollment(ctx, e, "")
				return err
			})
		}
	case "group-disable":
		// 32 devices of one group, each registering new IDs in a loop.
		key := raceGroup(t, c, name)
		for i := range 32 {
			cfg := base
			cfg.RegistrationID, cfg.GroupKey = fmt.Sprintf("%s-w%02d", name, i), key
			devices = append(devices, cfg)
		}
		change = func() error {
			g, err := c.GetGroup(ctx, name)
			if err != nil {
				return err
			}
			g.ProvisioningStatus = enrollment.StatusDisabled
			_, err = c.PutGroup(ctx, g, "")
			return err
		}
	}

	var (
		mu      sync.Mutex
		serials []*big.Int
		changed bool
		refused int
		wg      sync.WaitGroup
	)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	for _, cfg := range devices {
		wg.Go(func() {
			prefix := cfg.RegistrationID
			for i := 0; lctx.Err() == nil; i++ {
				if cfg.GroupKey != nil {
					cfg.RegistrationID = fmt.Sprintf("%s-%05d", prefix, i)
				}
				res, err := device.Register(lctx, cfg)
				mu.Lock()
				after := changed
				switch {
				case err == nil && len(res.IssuedCertificateChain) > 0:
					serials = append(serials, res.IssuedCertificateChain[0].SerialNumber)
				case after && lctx.Err() == nil:
					refused++
				}
				mu.Unlock()
				if err != nil && !after {
					time.Sleep(10 * time.Millisecond) // no hot loop on a refusal before the change
				}
			}
		})
	}
	time.Sleep(delay)
	if err := change(); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
	mu.Lock()
	changed = true
	mu.Unlock()
	// Let the devices try again after the answer: none may get a
	// certificate now, and any they got must be revoked.
	time.Sleep(100 * time.Millisecond)
	stop()
	wg.Wait()

	der, err := c.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	onCRL := map[string]bool{}
	for _, e := range crl.RevokedCertificateEntries {
		onCRL[e.SerialNumber.Text(16)] = true
	}
	res := raceResult{issued: len(serials), refused: refused}
	for _, s := range serials {
		if !onCRL[s.Text(16)] {
			res.unrevoked = append(res.unrevoked, s.Text(16))
		}
	}
	return res
}

// forEach runs fn for every ID at once and returns the first error.
func forEach(ids []string, fn func(string) error) error {
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { errs[i] = fn(id) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func raceEnrollment(t *testing.T, c *client.Client, id string) []byte {
	t.Helper()
	if _, err := c.PutEnrollment(t.Context(), &enrollment.IndividualEnrollment{
		RegistrationID: id, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := c.EnrollmentKeys(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return raceKey(t, keys.SymmetricKey.PrimaryKey)
}

func raceGroup(t *testing.T, c *client.Client, id string) []byte {
	t.Helper()
	if _, err := c.PutGroup(t.Context(), &enrollment.EnrollmentGroup{
		EnrollmentGroupID: id, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := c.GroupKeys(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return raceKey(t, keys.SymmetricKey.PrimaryKey)
}

func raceKey(t *testing.T, b64 string) []byte {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
