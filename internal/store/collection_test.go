package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/enrollment"
)

// TestGetIfChanged: the version the caller holds answers unchanged; a newer
// one is decoded; a missing one is not found.
func TestGetIfChanged(t *testing.T) {
	ctx := context.Background()
	s := store.New(memory.New(), nil)
	e := &enrollment.IndividualEnrollment{RegistrationID: "dev-1"}
	if _, err := s.Enrollments.Put(ctx, e, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	held := e.ETag
	e.ProvisioningStatus = enrollment.StatusDisabled
	if _, err := s.Enrollments.Put(ctx, e, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, id, etag string
		changed        bool
		err            error
	}{
		{"held version is current", "dev-1", e.ETag, false, nil},
		{"held version is old", "dev-1", held, true, nil},
		{"no version held", "dev-1", "", true, nil},
		{"gone", "dev-2", held, false, store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Backend.View(ctx, func(tx store.Tx) error {
				v, changed, err := s.Enrollments.In(tx).GetIfChanged(ctx, tc.id, tc.etag)
				if changed != tc.changed || !errors.Is(err, tc.err) {
					t.Fatalf("changed %v err %v, want %v %v", changed, err, tc.changed, tc.err)
				}
				if changed && (v.ProvisioningStatus != enrollment.StatusDisabled || v.ETag != e.ETag) {
					t.Fatalf("decoded %+v", v)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFindAndAll: Find answers a missing document as nil without error;
// All and AllBy read past the first page.
func TestFindAndAll(t *testing.T) {
	ctx := context.Background()
	s := store.New(memory.New(), nil)
	const n = 2500 // more than two of All's pages
	for i := range n {
		h := &enrollment.Hub{Name: fmt.Sprintf("hub-%04d.example.net", i), AllocationWeight: 1}
		if _, err := s.Hubs.Put(ctx, h, store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		id   string
		want bool
	}{{"hub-0007.example.net", true}, {"missing.example.net", false}} {
		h, err := s.Hubs.Find(ctx, tc.id)
		if err != nil || (h != nil) != tc.want {
			t.Errorf("Find(%s) = %v, %v; want found %v", tc.id, h, err, tc.want)
		}
	}
	all, err := s.Hubs.All(ctx)
	if err != nil || len(all) != n {
		t.Fatalf("All: %d hubs, %v; want %d", len(all), err, n)
	}
	seen := map[string]bool{}
	for _, h := range all {
		seen[h.Name] = true
	}
	if len(seen) != n {
		t.Errorf("All answered %d distinct hubs of %d", len(seen), n)
	}
}
