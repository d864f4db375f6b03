package store_test

import (
	"context"
	"errors"
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
