package provisioning_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/operations"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/sweep"
	"github.com/zdps/zdps/internal/testbackend"
	"github.com/zdps/zdps/pkg/enrollment"
)

// putOperations stores ops in one transaction, as they are.
func putOperations(t testing.TB, e *env, ops []*enrollment.Operation) {
	t.Helper()
	col := operations.Collection(e.st.Backend, e.clock)
	err := e.st.Backend.Update(context.Background(), func(tx store.Tx) error {
		for _, op := range ops {
			if _, err := col.In(tx).Put(context.Background(), op, store.Condition{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// keys lists the keys of a bucket.
func keys(t testing.TB, b store.Backend, bucket store.Bucket) []string {
	return testbackend.Keys(t, b, bucket)
}

func opID(i int) string { return fmt.Sprintf("%032x", i) }

func TestPruneExpired(t *testing.T) {
	ttl := provisioning.DefaultOperationTTL
	tests := []struct {
		name   string
		op     func(now time.Time) *enrollment.Operation
		pruned bool
	}{
		{name: "fresh", op: func(now time.Time) *enrollment.Operation {
			return &enrollment.Operation{Status: enrollment.RegistrationAssigned, ExpiresAt: now.Add(time.Second)}
		}},
		{name: "expired", pruned: true, op: func(now time.Time) *enrollment.Operation {
			return &enrollment.Operation{Status: enrollment.RegistrationAssigned, ExpiresAt: now.Add(-time.Second)}
		}},
		{name: "expires now (polls no longer find it)", pruned: true, op: func(now time.Time) *enrollment.Operation {
			return &enrollment.Operation{Status: enrollment.RegistrationFailed, ExpiresAt: now}
		}},
		{name: "assigning before its deadline", op: func(now time.Time) *enrollment.Operation {
			return &enrollment.Operation{Status: enrollment.RegistrationAssigning, ExpiresAt: now.Add(-time.Hour), Deadline: now.Add(time.Minute)}
		}},
		{name: "assigning past its deadline, within deadline + TTL", op: func(now time.Time) *enrollment.Operation {
			return &enrollment.Operation{Status: enrollment.RegistrationAssigning, ExpiresAt: now.Add(-time.Minute), Deadline: now.Add(-ttl + time.Second)}
		}},
		{name: "assigning past deadline + TTL", pruned: true, op: func(now time.Time) *enrollment.Operation {
			return &enrollment.Operation{Status: enrollment.RegistrationAssigning, ExpiresAt: now.Add(-time.Minute), Deadline: now.Add(-ttl)}
		}},
	}
	for _, be := range testbackend.All {
		t.Run(be.Name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, be.Open(t), nil)
			now := e.clock()
			var ops []*enrollment.Operation
			var wantOps, wantIndex []string
			for i, tc := range tests {
				op := tc.op(now)
				op.OperationID, op.RegistrationID = opID(i), fmt.Sprintf("dev-%d", i)
				ops = append(ops, op)
				if !tc.pruned {
					wantOps = append(wantOps, op.OperationID)
					if op.Status == enrollment.RegistrationAssigning {
						wantIndex = append(wantIndex, op.RegistrationID+"\x01"+op.OperationID)
					}
				}
			}
			putOperations(t, e, ops)
			if n := count(t, e.st.Backend, operations.IndexAssigning); n != 3 {
				t.Fatalf("%d assigning index entries before pruning, want 3", n)
			}

			n, err := e.svc.PruneExpired(ctx, now)
			if err != nil {
				t.Fatal(err)
			}
			if want := len(tests) - len(wantOps); n != want {
				t.Errorf("pruned %d, want %d", n, want)
			}
			got := keys(t, e.st.Backend, provisioning.BucketOperations)
			for i, tc := range tests {
				if slices.Contains(got, opID(i)) == tc.pruned {
					t.Errorf("%s: pruned = %v, want %v", tc.name, !tc.pruned, tc.pruned)
				}
			}
			if got := keys(t, e.st.Backend, operations.IndexAssigning); !slices.Equal(got, wantIndex) {
				t.Errorf("assigning index = %q, want %q", got, wantIndex)
			}
			if n, err := e.svc.PruneExpired(ctx, now); err != nil || n != 0 {
				t.Errorf("second prune: %d, %v; want 0, nil", n, err)
			}
		})
	}
}

// TestPruneBatches: more than one batch, and two prunes at once on one
// store (two replicas) delete each operation once between them.
func TestPruneBatches(t *testing.T) {
	const expired, fresh = 2*sweep.Batch + 7, 150
	for _, be := range testbackend.All {
		for _, concurrent := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/%d", be.Name, concurrent), func(t *testing.T) {
				ctx := context.Background()
				e := newEnv(t, be.Open(t), nil)
				now := e.clock()
				var ops []*enrollment.Operation
				for i := range expired + fresh {
					op := &enrollment.Operation{OperationID: opID(i), RegistrationID: fmt.Sprintf("dev-%d", i%10), Status: enrollment.RegistrationAssigned, ExpiresAt: now.Add(-time.Hour)}
					switch {
					case i%7 == 0 && i/7 < fresh:
						op.ExpiresAt = now.Add(time.Hour) // interleaved with the expired ones
					case i%3 == 0:
						op.Status, op.Deadline = enrollment.RegistrationAssigning, now.Add(-2*provisioning.DefaultOperationTTL)
					}
					ops = append(ops, op)
				}
				putOperations(t, e, ops)

				var total atomic.Int64
				var wg sync.WaitGroup
				for range concurrent {
					wg.Go(func() {
						n, err := e.svc.PruneExpired(ctx, now)
						if err != nil {
							t.Error(err)
						}
						total.Add(int64(n))
					})
				}
				wg.Wait()
				if total.Load() != expired {
					t.Errorf("pruned %d in all, want %d", total.Load(), expired)
				}
				if n := count(t, e.st.Backend, provisioning.BucketOperations); n != fresh {
					t.Errorf("%d operations left, want %d", n, fresh)
				}
				if n := count(t, e.st.Backend, operations.IndexAssigning); n != 0 {
					t.Errorf("%d assigning index entries left, want 0", n)
				}
			})
		}
	}
}

// TestPruneRegistration: the operation of a real registration goes after
// OperationTTL; its record and certificate stay.
func TestPruneRegistration(t *testing.T) {
	ctx := context.Background()
	e := asyncEnv(t, "bolt")
	req := devReq(t, "")
	op, err := e.svc.Register(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.PruneExpired(ctx, e.clock().Add(provisioning.DefaultOperationTTL-time.Second)); err != nil || n != 0 {
		t.Fatalf("prune before the TTL: %d, %v; want 0, nil", n, err)
	}
	poll(t, e.svc, req, op.OperationID)
	e.advance(provisioning.DefaultOperationTTL)
	if n, err := e.svc.PruneExpired(ctx, e.clock()); err != nil || n != 1 {
		t.Fatalf("prune after the TTL: %d, %v; want 1, nil", n, err)
	}
	if _, err := e.svc.OperationStatus(ctx, req, op.OperationID); !errors.Is(err, port.ErrNotFound) {
		t.Fatalf("poll after prune: %v, want ErrNotFound", err)
	}
	if _, err := e.st.Registrations.Get(ctx, "dev-1"); err != nil {
		t.Fatalf("registration record: %v", err)
	}
	if n := count(t, e.st.Backend, revocation.BucketCertificates); n != 1 {
		t.Fatalf("%d certificates, want 1", n)
	}
}
