package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// clock is a test clock that moves only when told to.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// RunTyped runs the part of the suite that checks the typed layer
// (store.New, with opts) on a backend.
func RunTyped(t *testing.T, open func(t *testing.T) store.Backend, opts ...store.Option) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s *store.Store, c *clock)
	}{
		{"EnrollmentCRUD", func(t *testing.T, s *store.Store, c *clock) {
			testCRUD(t, c, s.Enrollments, newEnrollment, func(e *enrollment.IndividualEnrollment) { e.DeviceID = "changed" })
		}},
		{"GroupCRUD", func(t *testing.T, s *store.Store, c *clock) {
			testCRUD(t, c, s.Groups, newGroup, func(g *enrollment.EnrollmentGroup) { g.ProvisioningStatus = enrollment.StatusDisabled })
		}},
		{"HubCRUD", func(t *testing.T, s *store.Store, c *clock) {
			testCRUD(t, c, s.Hubs, newHub, func(h *enrollment.Hub) { h.AllocationWeight = 7 })
		}},
		{"CaseInsensitiveIDs", testCaseInsensitive},
		{"ListPaging", testListPaging},
		{"InvalidContinuation", testInvalidContinuation},
		{"ContinuationSurvivesDelete", testContinuationSurvivesDelete},
		{"SecondaryIndexes", testIndexes},
		{"MultiDocumentTransaction", testMultiDocument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			tc.fn(t, store.New(open(t), c.Now, opts...), c)
		})
	}
}

func newEnrollment(id string) *enrollment.IndividualEnrollment {
	return &enrollment.IndividualEnrollment{
		RegistrationID: id, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
			Type:         enrollment.AttestationSymmetricKey,
			SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: "cHJpbWFyeS1rZXktMTIzNDU2", SecondaryKey: "c2Vjb25kYXJ5LWtleS0xMjM0"},
		},
			ProvisioningStatus: enrollment.StatusEnabled},
	}
}

func newGroup(id string) *enrollment.EnrollmentGroup {
	return &enrollment.EnrollmentGroup{
		EnrollmentGroupID: id, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
			Type:         enrollment.AttestationSymmetricKey,
			SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: "cHJpbWFyeS1rZXktMTIzNDU2"},
		},
			ProvisioningStatus: enrollment.StatusEnabled},
	}
}

func newHub(name string) *enrollment.Hub {
	return &enrollment.Hub{Name: name, AllocationWeight: 1, Region: "westeurope"}
}

func newRegistration(id, group, hub string) *enrollment.Registration {
	return &enrollment.Registration{
		RegistrationID:    id,
		DeviceID:          id,
		AssignedHub:       hub,
		Status:            enrollment.RegistrationAssigned,
		EnrollmentGroupID: group,
	}
}

// testCRUD walks one document through create, read, update, conditional
// writes and delete.
func testCRUD[T store.Document](t *testing.T, c *clock, coll *store.Collection[T], mk func(id string) T, mutate func(T)) {
	ctx := t.Context()
	const id = "crud-1"
	if _, err := coll.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get before create = %v, want ErrNotFound", err)
	}

	v := mk(id)
	created, err := coll.Put(ctx, v, store.Condition{IfNoneMatch: true})
	if err != nil || !created {
		t.Fatalf("create = %v, %v; want created", created, err)
	}
	ver := *v.Version()
	if ver.ETag == "" || ver.CreatedDateTimeUTC == nil || ver.LastUpdatedDateTimeUTC == nil {
		t.Fatalf("create did not fill in version fields: %+v", ver)
	}
	if !ver.CreatedDateTimeUTC.Equal(c.Now()) || !ver.LastUpdatedDateTimeUTC.Equal(c.Now()) {
		t.Fatalf("timestamps %v/%v, want the clock's %v", ver.CreatedDateTimeUTC, ver.LastUpdatedDateTimeUTC, c.Now())
	}
	got, err := coll.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if gv := got.Version(); gv.ETag != ver.ETag || !gv.CreatedDateTimeUTC.Equal(*ver.CreatedDateTimeUTC) {
		t.Fatalf("Get version %+v, want %+v", *gv, ver)
	}

	if _, err := coll.Put(ctx, mk(id), store.Condition{IfNoneMatch: true}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second create = %v, want ErrConflict", err)
	}

	// Update with the observed ETag, later: created stays, updated moves.
	c.Advance(time.Hour)
	mutate(got)
	etag := got.Version().ETag
	created, err = coll.Put(ctx, got, store.Condition{IfMatch: etag})
	if err != nil || created {
		t.Fatalf("update = %v, %v; want updated", created, err)
	}
	upd, err := coll.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	uv := upd.Version()
	if uv.ETag == etag || uv.ETag != got.Version().ETag {
		t.Fatalf("update ETag %q (old %q, Put reported %q)", uv.ETag, etag, got.Version().ETag)
	}
	if !uv.CreatedDateTimeUTC.Equal(*ver.CreatedDateTimeUTC) {
		t.Fatalf("CreatedDateTimeUTC moved: %v -> %v", ver.CreatedDateTimeUTC, uv.CreatedDateTimeUTC)
	}
	if !uv.LastUpdatedDateTimeUTC.Equal(c.Now()) {
		t.Fatalf("LastUpdatedDateTimeUTC %v, want %v", uv.LastUpdatedDateTimeUTC, c.Now())
	}
	// A client cannot move the creation time by sending one.
	forged := mk(id)
	forged.Version().CreatedDateTimeUTC = new(time.Unix(0, 0).UTC())
	if _, err := coll.Put(ctx, forged, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	if !forged.Version().CreatedDateTimeUTC.Equal(*ver.CreatedDateTimeUTC) {
		t.Fatalf("unconditional replace set CreatedDateTimeUTC to %v", forged.Version().CreatedDateTimeUTC)
	}

	// The ETag read before the last two writes is stale now.
	if _, err := coll.Put(ctx, mk(id), store.Condition{IfMatch: etag}); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("update with stale ETag = %v, want ErrPreconditionFailed", err)
	}
	if err := coll.Delete(ctx, id, store.Condition{IfMatch: etag}); !errors.Is(err, store.ErrPreconditionFailed) {
		t.Fatalf("delete with stale ETag = %v, want ErrPreconditionFailed", err)
	}
	if _, err := coll.Put(ctx, mk("crud-absent"), store.Condition{IfMatch: "*"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of absent = %v, want ErrNotFound", err)
	}
	if err := coll.Delete(ctx, id, store.Condition{IfMatch: forged.Version().ETag}); err != nil {
		t.Fatalf("delete with current ETag: %v", err)
	}
	if _, err := coll.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after delete = %v, want ErrNotFound", err)
	}
	if err := coll.Delete(ctx, id, store.Condition{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete = %v, want ErrNotFound", err)
	}
}

func testCaseInsensitive(t *testing.T, s *store.Store, _ *clock) {
	ctx := t.Context()
	if _, err := s.Enrollments.Put(ctx, newEnrollment("Device-ABC.01"), store.Condition{IfNoneMatch: true}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"Device-ABC.01", "device-abc.01", "DEVICE-ABC.01", "dEvIcE-aBc.01"} {
		t.Run(id, func(t *testing.T) {
			e, err := s.Enrollments.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			// The ID keeps the casing it was created with.
			if e.RegistrationID != "Device-ABC.01" {
				t.Fatalf("RegistrationID = %q", e.RegistrationID)
			}
			if _, err := s.Enrollments.Put(ctx, newEnrollment(id), store.Condition{IfNoneMatch: true}); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("create %q = %v, want ErrConflict", id, err)
			}
		})
	}
	if _, err := s.Hubs.Put(ctx, newHub("Hub1.Azure-Devices.NET"), store.Condition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Hubs.Get(ctx, "hub1.azure-devices.net"); err != nil {
		t.Fatalf("hub by lower-case name: %v", err)
	}
	if err := s.Enrollments.Delete(ctx, "DEVICE-abc.01", store.Condition{}); err != nil {
		t.Fatalf("delete by other casing: %v", err)
	}
	if _, err := s.Enrollments.Get(ctx, "Device-ABC.01"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after delete = %v", err)
	}
}

// listAll pages through list with page size n and returns every page's IDs.
func listAll(t *testing.T, list func(cont string, n int) ([]string, string, error), n int) [][]string {
	t.Helper()
	var pages [][]string
	cont := ""
	for {
		ids, next, err := list(cont, n)
		if err != nil {
			t.Fatalf("page %d: %v", len(pages)+1, err)
		}
		pages = append(pages, ids)
		if next == "" {
			return pages
		}
		if len(pages) > 1000 {
			t.Fatal("paging does not end")
		}
		cont = next
	}
}

func enrollmentIDs(t *testing.T, s *store.Store) func(cont string, n int) ([]string, string, error) {
	return func(cont string, n int) ([]string, string, error) {
		es, next, err := s.Enrollments.List(t.Context(), cont, n)
		ids := make([]string, len(es))
		for i, e := range es {
			ids[i] = e.RegistrationID
		}
		return ids, next, err
	}
}

func registrationsBy(t *testing.T, s *store.Store, index store.Bucket, value string) func(cont string, n int) ([]string, string, error) {
	return func(cont string, n int) ([]string, string, error) {
		rs, next, err := s.Registrations.ListBy(t.Context(), index, value, cont, n)
		ids := make([]string, len(rs))
		for i, r := range rs {
			ids[i] = r.RegistrationID
		}
		return ids, next, err
	}
}

func testListPaging(t *testing.T, s *store.Store, _ *clock) {
	ctx := t.Context()
	if ids, next, err := s.Enrollments.List(ctx, "", 10); err != nil || len(ids) != 0 || next != "" {
		t.Fatalf("List of empty collection = %v, %q, %v", ids, next, err)
	}
	const total = 25
	var want []string
	for i := range total {
		// Mixed case: order is by the case-insensitive key.
		id := fmt.Sprintf("dev-%02d", i)
		if i%3 == 0 {
			id = strings.ToUpper(id)
		}
		want = append(want, id)
		if _, err := s.Enrollments.Put(ctx, newEnrollment(id), store.Condition{IfNoneMatch: true}); err != nil {
			t.Fatal(err)
		}
	}
	// Other collections do not leak into the listing.
	if _, err := s.Groups.Put(ctx, newGroup("dev-group"), store.Condition{}); err != nil {
		t.Fatal(err)
	}
	sort.Slice(want, func(i, j int) bool { return strings.ToLower(want[i]) < strings.ToLower(want[j]) })
	for _, tc := range []struct {
		name  string
		size  int
		pages []int
	}{
		{"several pages", 10, []int{10, 10, 5}},
		{"exact multiple has no empty last page", 5, []int{5, 5, 5, 5, 5}},
		{"one item per page", 1, slices.Repeat([]int{1}, total)},
		{"page larger than collection", 100, []int{total}},
		{"page equal to collection", total, []int{total}},
		{"no limit", 0, []int{total}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pages := listAll(t, enrollmentIDs(t, s), tc.size)
			var sizes []int
			var got []string
			for _, p := range pages {
				sizes = append(sizes, len(p))
				got = append(got, p...)
			}
			if !slices.Equal(sizes, tc.pages) {
				t.Fatalf("page sizes %v, want %v", sizes, tc.pages)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("listed %q, want %q", got, want)
			}
		})
	}
}

func testInvalidContinuation(t *testing.T, s *store.Store, _ *clock) {
	ctx := t.Context()
	for i := range 3 {
		if _, err := s.Enrollments.Put(ctx, newEnrollment(fmt.Sprintf("dev-%d", i)), store.Condition{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Registrations.Put(ctx, newRegistration(fmt.Sprintf("dev-%d", i), "g1", "h1"), store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	_, groupToken, err := s.Registrations.ListBy(ctx, store.IndexRegistrationsByGroup, "g1", "", 1)
	if err != nil || groupToken == "" {
		t.Fatalf("ListBy page 1: %q, %v", groupToken, err)
	}
	for _, tok := range []string{"%%%", "not-a-token", "aGVsbG8", "!", "\x00"} {
		t.Run("List/"+tok, func(t *testing.T) {
			if _, _, err := s.Enrollments.List(ctx, tok, 10); !errors.Is(err, store.ErrInvalidContinuation) {
				t.Fatalf("List(%q) = %v, want ErrInvalidContinuation", tok, err)
			}
			if _, _, err := s.Registrations.ListBy(ctx, store.IndexRegistrationsByGroup, "g1", tok, 10); !errors.Is(err, store.ErrInvalidContinuation) {
				t.Fatalf("ListBy(%q) = %v, want ErrInvalidContinuation", tok, err)
			}
		})
	}
	// A token of one index value is not valid for another.
	if _, _, err := s.Registrations.ListBy(ctx, store.IndexRegistrationsByGroup, "other", groupToken, 10); !errors.Is(err, store.ErrInvalidContinuation) {
		t.Fatalf("ListBy with another value's token = %v, want ErrInvalidContinuation", err)
	}
}

func testContinuationSurvivesDelete(t *testing.T, s *store.Store, _ *clock) {
	ctx := t.Context()
	for i := range 6 {
		if _, err := s.Enrollments.Put(ctx, newEnrollment(fmt.Sprintf("dev-%d", i)), store.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	page, next, err := s.Enrollments.List(ctx, "", 3)
	if err != nil || len(page) != 3 || next == "" {
		t.Fatalf("page 1: %d items, %q, %v", len(page), next, err)
	}
	// The item the token points after disappears, and one is inserted
	// ahead of the cursor: the next page still continues where the first
	// ended.
	if err := s.Enrollments.Delete(ctx, page[2].RegistrationID, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enrollments.Put(ctx, newEnrollment("dev-0a"), store.Condition{}); err != nil {
		t.Fatal(err)
	}
	ids, next, err := enrollmentIDs(t, s)(next, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dev-3", "dev-4", "dev-5"}; !slices.Equal(ids, want) || next != "" {
		t.Fatalf("page 2 = %q next %q, want %q and no next", ids, next, want)
	}
}

func testIndexes(t *testing.T, s *store.Store, _ *clock) {
	ctx := t.Context()
	reg := s.Registrations
	for _, r := range []*enrollment.Registration{
		newRegistration("r1", "G1", "hub-a"),
		newRegistration("r2", "g1", "hub-b"),
		newRegistration("r3", "", "hub-a"), // individual enrollment: no group
		newRegistration("r4", "g2", ""),    // not assigned yet
		newRegistration("r5", "g1", "hub-a"),
	} {
		if _, err := reg.Put(ctx, r, store.Condition{IfNoneMatch: true}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(t *testing.T, index store.Bucket, value string, want ...string) {
		t.Helper()
		for _, size := range []int{0, 1, 2} { // also across index pages
			var got []string
			for _, p := range listAll(t, registrationsBy(t, s, index, value), size) {
				got = append(got, p...)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("ListBy(%s, %q) with page size %d = %q, want %q", index, value, size, got, want)
			}
		}
	}
	t.Run("after create", func(t *testing.T) {
		check(t, store.IndexRegistrationsByGroup, "g1", "r1", "r2", "r5")
		check(t, store.IndexRegistrationsByGroup, "G1", "r1", "r2", "r5") // values are case-insensitive
		check(t, store.IndexRegistrationsByGroup, "g2", "r4")
		check(t, store.IndexRegistrationsByGroup, "", nil...)
		check(t, store.IndexRegistrationsByHub, "hub-a", "r1", "r3", "r5")
		check(t, store.IndexRegistrationsByHub, "HUB-B", "r2")
		check(t, store.IndexRegistrationsByHub, "hub-c", nil...)
		// A value that is a prefix of another does not match it.
		check(t, store.IndexRegistrationsByGroup, "g", nil...)
	})
	t.Run("change of group and hub", func(t *testing.T) {
		r1, err := reg.Get(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		r1.EnrollmentGroupID = "g2"
		r1.AssignedHub = "hub-b"
		if _, err := reg.Put(ctx, r1, store.Condition{IfMatch: r1.ETag}); err != nil {
			t.Fatal(err)
		}
		check(t, store.IndexRegistrationsByGroup, "g1", "r2", "r5")
		check(t, store.IndexRegistrationsByGroup, "g2", "r1", "r4")
		check(t, store.IndexRegistrationsByHub, "hub-a", "r3", "r5")
		check(t, store.IndexRegistrationsByHub, "hub-b", "r1", "r2")
	})
	t.Run("refused write leaves indexes alone", func(t *testing.T) {
		moved := newRegistration("r2", "g9", "hub-z")
		if _, err := reg.Put(ctx, moved, store.Condition{IfMatch: "0000000000000000"}); !errors.Is(err, store.ErrPreconditionFailed) {
			t.Fatalf("Put = %v, want ErrPreconditionFailed", err)
		}
		check(t, store.IndexRegistrationsByGroup, "g9", nil...)
		check(t, store.IndexRegistrationsByGroup, "g1", "r2", "r5")
	})
	t.Run("unchanged values", func(t *testing.T) {
		r5, err := reg.Get(ctx, "r5")
		if err != nil {
			t.Fatal(err)
		}
		r5.Status = enrollment.RegistrationFailed
		if _, err := reg.Put(ctx, r5, store.Condition{}); err != nil {
			t.Fatal(err)
		}
		check(t, store.IndexRegistrationsByGroup, "g1", "r2", "r5")
		check(t, store.IndexRegistrationsByHub, "hub-a", "r3", "r5")
	})
	t.Run("delete", func(t *testing.T) {
		for _, id := range []string{"r2", "R3"} {
			if err := reg.Delete(ctx, id, store.Condition{}); err != nil {
				t.Fatal(err)
			}
		}
		check(t, store.IndexRegistrationsByGroup, "g1", "r5")
		check(t, store.IndexRegistrationsByHub, "hub-a", "r5")
		check(t, store.IndexRegistrationsByHub, "hub-b", "r1")
		if err := reg.Delete(ctx, "r5", store.Condition{}); err != nil {
			t.Fatal(err)
		}
		check(t, store.IndexRegistrationsByGroup, "g1", nil...)
		check(t, store.IndexRegistrationsByHub, "hub-a", nil...)
	})
}

func testMultiDocument(t *testing.T, s *store.Store, _ *clock) {
	ctx := t.Context()
	if _, err := s.Hubs.Put(ctx, newHub("taken"), store.Condition{}); err != nil {
		t.Fatal(err)
	}
	// write creates an enrollment, its registration record and a hub in
	// one transaction, then runs last.
	write := func(hub string, last error) error {
		return s.Backend.Update(ctx, func(tx store.Tx) error {
			if _, err := s.Enrollments.In(tx).Put(ctx, newEnrollment("dev-1"), store.Condition{IfNoneMatch: true}); err != nil {
				return err
			}
			if _, err := s.Registrations.In(tx).Put(ctx, newRegistration("dev-1", "g1", hub), store.Condition{IfNoneMatch: true}); err != nil {
				return err
			}
			// Read-your-own-writes through the typed layer.
			if _, err := s.Enrollments.In(tx).Get(ctx, "DEV-1"); err != nil {
				return fmt.Errorf("own write not visible: %w", err)
			}
			if _, err := s.Hubs.In(tx).Put(ctx, newHub(hub), store.Condition{IfNoneMatch: true}); err != nil {
				return err
			}
			return last
		})
	}
	absent := func(t *testing.T) {
		t.Helper()
		if _, err := s.Enrollments.Get(ctx, "dev-1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("enrollment after rollback: %v", err)
		}
		if _, err := s.Registrations.Get(ctx, "dev-1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("registration after rollback: %v", err)
		}
		if rs, _, err := s.Registrations.ListBy(ctx, store.IndexRegistrationsByGroup, "g1", "", 0); err != nil || len(rs) != 0 {
			t.Fatalf("index after rollback: %d entries, %v", len(rs), err)
		}
	}
	t.Run("fn error", func(t *testing.T) {
		if err := write("new-hub", errAbort); !errors.Is(err, errAbort) {
			t.Fatalf("Update = %v, want errAbort", err)
		}
		absent(t)
		if _, err := s.Hubs.Get(ctx, "new-hub"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("hub after rollback: %v", err)
		}
	})
	t.Run("conflict in the last write", func(t *testing.T) {
		if err := write("taken", nil); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("Update = %v, want ErrConflict", err)
		}
		absent(t)
	})
	t.Run("commit", func(t *testing.T) {
		if err := write("new-hub", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Enrollments.Get(ctx, "dev-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Hubs.Get(ctx, "new-hub"); err != nil {
			t.Fatal(err)
		}
		ids := listAll(t, registrationsBy(t, s, store.IndexRegistrationsByHub, "new-hub"), 0)
		if !slices.Equal(ids[0], []string{"dev-1"}) {
			t.Fatalf("index after commit: %q", ids)
		}
	})
}
