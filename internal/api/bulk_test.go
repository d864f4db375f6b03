package api

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

func bulkBody(mode string, items ...map[string]any) map[string]any {
	list := make([]any, len(items))
	for i, it := range items {
		list[i] = it
	}
	return map[string]any{"mode": mode, "enrollments": list}
}

func failuresByID(t *testing.T, r reply) (bool, map[string]enrollment.BulkOperationError) {
	t.Helper()
	var res enrollment.BulkOperationResult
	r.decode(t, &res)
	m := map[string]enrollment.BulkOperationError{}
	for _, f := range res.Errors {
		m[f.RegistrationID] = f
	}
	if res.IsSuccessful != (len(res.Errors) == 0) {
		t.Fatalf("isSuccessful %v with %d errors", res.IsSuccessful, len(res.Errors))
	}
	return res.IsSuccessful, m
}

func TestBulkEnrollments(t *testing.T) {
	e := newEnv(t)
	const n = 1000
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = symEnrollment(fmt.Sprintf("dev-%04d", i))
	}

	t.Run("create 1000", func(t *testing.T) {
		r := e.must(req{method: http.MethodPost, path: "/enrollments", body: bulkBody("create", items...)}, http.StatusOK)
		if ok, fs := failuresByID(t, r); !ok {
			t.Fatalf("failures: %v", fs)
		}
		ids := queryAll(t, e, "/enrollments/query", 1000, func(r reply) []string {
			var out []enrollment.IndividualEnrollment
			r.decode(t, &out)
			ids := make([]string, len(out))
			for i, x := range out {
				ids[i] = x.RegistrationID
			}
			return ids
		})
		if len(ids) != n {
			t.Fatalf("%d stored", len(ids))
		}
		one, err := e.st.Enrollments.Get(context.Background(), "dev-0999")
		if err != nil || one.Attestation.SymmetricKey.PrimaryKey == "" {
			t.Fatalf("keys not generated: %+v %v", one, err)
		}
	})

	t.Run("create with per-item errors", func(t *testing.T) {
		r := e.must(req{method: http.MethodPost, path: "/enrollments", body: bulkBody("create",
			symEnrollment("dev-0001"),            // exists
			symEnrollment("new-1"),               // fine
			symEnrollment("-bad-"),               // invalid ID
			symEnrollment("new-2", "not base64"), // invalid key
			symEnrollment("new-3"),               // fine
			symEnrollment("NEW-3"),               // duplicate in the same call
		)}, http.StatusOK)
		ok, fs := failuresByID(t, r)
		if ok || len(fs) != 4 {
			t.Fatalf("failures %v", fs)
		}
		want := map[string]int{"dev-0001": dps.CodeConflict, "-bad-": dps.CodeBadArgument, "new-2": dps.CodeBadArgument, "NEW-3": dps.CodeConflict}
		for id, code := range want {
			if fs[id].ErrorCode != code || fs[id].ErrorStatus == "" {
				t.Errorf("%s: %+v, want code %d", id, fs[id], code)
			}
		}
		for _, id := range []string{"new-1", "new-3"} {
			e.must(req{method: http.MethodGet, path: "/enrollments/" + id}, http.StatusOK)
		}
		e.must(req{method: http.MethodGet, path: "/enrollments/new-2"}, http.StatusNotFound)
	})

	t.Run("update keeps keys and creates missing", func(t *testing.T) {
		before, _ := e.st.Enrollments.Get(context.Background(), "dev-0002")
		upd := symEnrollment("dev-0002")
		upd["deviceId"] = "renamed"
		r := e.must(req{method: http.MethodPost, path: "/enrollments", body: bulkBody("update", upd, symEnrollment("brand-new"))}, http.StatusOK)
		if ok, fs := failuresByID(t, r); !ok {
			t.Fatalf("failures %v", fs)
		}
		after, _ := e.st.Enrollments.Get(context.Background(), "dev-0002")
		if after.DeviceID != "renamed" || *after.Attestation.SymmetricKey != *before.Attestation.SymmetricKey {
			t.Fatalf("after update %+v", after)
		}
	})

	t.Run("updateIfMatchETag", func(t *testing.T) {
		cur, _ := e.st.Enrollments.Get(context.Background(), "dev-0003")
		good := symEnrollment("dev-0003")
		good["etag"] = cur.ETag
		good["deviceId"] = "etagged"
		stale := symEnrollment("dev-0004")
		stale["etag"] = "stale"
		missing := symEnrollment("nobody")
		missing["etag"] = "x"
		r := e.must(req{method: http.MethodPost, path: "/enrollments", body: bulkBody("updateIfMatchETag", good, stale, symEnrollment("dev-0005"), missing)}, http.StatusOK)
		_, fs := failuresByID(t, r)
		want := map[string]int{"dev-0004": dps.CodePreconditionFailed, "dev-0005": dps.CodeBadArgument, "nobody": dps.CodePreconditionFailed}
		if len(fs) != len(want) {
			t.Fatalf("failures %v", fs)
		}
		for id, code := range want {
			if fs[id].ErrorCode != code {
				t.Errorf("%s: %+v, want %d", id, fs[id], code)
			}
		}
		got, _ := e.st.Enrollments.Get(context.Background(), "dev-0003")
		if got.DeviceID != "etagged" {
			t.Fatal("the matching item was not written")
		}
	})

	t.Run("delete", func(t *testing.T) {
		del := make([]map[string]any, 0, 600)
		for i := range 600 {
			del = append(del, map[string]any{"registrationId": fmt.Sprintf("dev-%04d", i)})
		}
		del = append(del, map[string]any{"registrationId": "nobody"}, map[string]any{"registrationId": "dev-0700", "etag": "stale"})
		r := e.must(req{method: http.MethodPost, path: "/enrollments/", body: bulkBody("delete", del...)}, http.StatusOK)
		_, fs := failuresByID(t, r)
		if len(fs) != 2 || fs["nobody"].ErrorCode != dps.CodeNotFound || fs["dev-0700"].ErrorCode != dps.CodePreconditionFailed {
			t.Fatalf("failures %v", fs)
		}
		e.must(req{method: http.MethodGet, path: "/enrollments/dev-0599"}, http.StatusNotFound)
		e.must(req{method: http.MethodGet, path: "/enrollments/dev-0600"}, http.StatusOK)
	})

	t.Run("more than MaxBulkItems", func(t *testing.T) {
		before := e.dump()
		over := make([]map[string]any, DefaultMaxBulkItems+1)
		for i := range over {
			over[i] = symEnrollment(fmt.Sprintf("over-%04d", i))
		}
		eb := e.must(req{method: http.MethodPost, path: "/enrollments", body: bulkBody("create", over...)}, http.StatusBadRequest).errBody(t)
		if eb.ErrorCode != dps.CodeBadArgument {
			t.Errorf("errorCode %d", eb.ErrorCode)
		}
		if e.dump() != before {
			t.Fatal("store changed")
		}
	})
}

func TestBulkGroups(t *testing.T) {
	e := newEnv(t, func(c *testConfig) { c.MaxBulkItems = 50 })
	var list []any
	for i := range 20 {
		list = append(list, symGroup(fmt.Sprintf("grp-%02d", i)))
	}
	list = append(list, symGroup("grp-00"), map[string]any{"enrollmentGroupId": "tpm-group", "attestation": map[string]any{"type": "tpm", "tpm": map[string]any{"endorsementKey": "AAAA"}}})
	r := e.must(req{method: http.MethodPost, path: "/enrollmentGroups", body: map[string]any{"mode": "create", "enrollmentGroups": list}}, http.StatusOK)
	var res enrollment.BulkEnrollmentGroupOperationResult
	r.decode(t, &res)
	if res.IsSuccessful || len(res.Errors) != 2 {
		t.Fatalf("result %s", r.body)
	}
	for _, f := range res.Errors {
		switch f.EnrollmentGroupID {
		case "grp-00":
			if f.ErrorCode != dps.CodeConflict {
				t.Errorf("%+v", f)
			}
		case "tpm-group":
			if f.ErrorCode != dps.CodeBadArgument {
				t.Errorf("%+v", f)
			}
		default:
			t.Errorf("unexpected failure %+v", f)
		}
	}
	e.must(req{method: http.MethodGet, path: "/enrollmentGroups/grp-19"}, http.StatusOK)
	r = e.must(req{method: http.MethodPost, path: "/enrollmentGroups", body: map[string]any{"mode": "delete", "enrollmentGroups": []any{map[string]any{"enrollmentGroupId": "grp-19"}}}}, http.StatusOK)
	r.decode(t, &res)
	if !res.IsSuccessful || res.Errors == nil {
		t.Fatalf("result %s (errors must be [] not null)", r.body)
	}
	e.must(req{method: http.MethodGet, path: "/enrollmentGroups/grp-19"}, http.StatusNotFound)
	over := make([]any, 51)
	for i := range over {
		over[i] = symGroup(fmt.Sprintf("o-%02d", i))
	}
	e.must(req{method: http.MethodPost, path: "/enrollmentGroups", body: map[string]any{"mode": "create", "enrollmentGroups": over}}, http.StatusBadRequest)
}

// TestConcurrentIfMatch: 100 updates carrying the same ETag race; exactly
// one wins, the others get 412.
func TestConcurrentIfMatch(t *testing.T) {
	e := newEnv(t)
	r := e.must(req{method: http.MethodPut, path: "/enrollments/race", body: symEnrollment("race")}, http.StatusOK)
	var cur enrollment.IndividualEnrollment
	r.decode(t, &cur)

	const n = 100
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			body := symEnrollment("race")
			body["deviceId"] = fmt.Sprintf("winner-%d", i)
			statuses[i] = e.do(req{method: http.MethodPut, path: "/enrollments/race", body: body, header: map[string]string{"If-Match": cur.ETag}}).status
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[http.StatusOK] != 1 || count[http.StatusPreconditionFailed] != n-1 {
		t.Fatalf("statuses %v", count)
	}
}
