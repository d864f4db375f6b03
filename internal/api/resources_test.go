package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

func TestEnrollmentCRUD(t *testing.T) {
	e := newEnv(t)

	// Create without keys: 200, keys generated but not answered.
	r := e.must(req{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-1")}, http.StatusOK)
	var got enrollment.IndividualEnrollment
	r.decode(t, &got)
	if got.RegistrationID != "dev-1" || got.ETag == "" || got.CreatedDateTimeUTC == nil {
		t.Fatalf("create answer %s", r.body)
	}
	if got.Attestation.SymmetricKey == nil || got.Attestation.SymmetricKey.PrimaryKey != "" || got.Attestation.SymmetricKey.SecondaryKey != "" {
		t.Fatalf("create answer carries keys: %s", r.body)
	}
	stored, err := e.st.Enrollments.Get(context.Background(), "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	k1 := stored.Attestation.SymmetricKey
	if key, err := enrollment.DecodeKey(k1.PrimaryKey); err != nil || len(key) != enrollment.GeneratedKeyBytes {
		t.Fatalf("generated primary key %q: %v", k1.PrimaryKey, err)
	}
	if k1.SecondaryKey == "" || k1.SecondaryKey == k1.PrimaryKey {
		t.Fatalf("secondary key %q", k1.SecondaryKey)
	}

	// GET never returns keys; the keys call does.
	r = e.must(req{method: http.MethodGet, path: "/enrollments/dev-1"}, http.StatusOK)
	if strings.Contains(string(r.body), k1.PrimaryKey) || strings.Contains(string(r.body), k1.SecondaryKey) {
		t.Fatalf("GET answer carries keys: %s", r.body)
	}
	r = e.must(req{method: http.MethodPost, path: "/enrollments/dev-1/attestationmechanism"}, http.StatusOK)
	var att enrollment.AttestationMechanism
	r.decode(t, &att)
	if att.SymmetricKey == nil || att.SymmetricKey.PrimaryKey != k1.PrimaryKey || att.SymmetricKey.SecondaryKey != k1.SecondaryKey {
		t.Fatalf("keys answer %s", r.body)
	}

	// GET shows the device's registration record, which requests cannot set.
	putRecord(t, e, "dev-1", "")
	r = e.must(req{method: http.MethodGet, path: "/enrollments/dev-1"}, http.StatusOK)
	var withState enrollment.IndividualEnrollment
	r.decode(t, &withState)
	if withState.RegistrationState == nil || withState.RegistrationState.Status != enrollment.RegistrationAssigned {
		t.Fatalf("GET without registrationState: %s", r.body)
	}

	// Update without keys keeps them; the body echoes what GET gave.
	upd := symEnrollment("DEV-1")
	upd["deviceId"] = "device-one"
	r = e.must(req{method: http.MethodPut, path: "/enrollments/dev-1", body: upd, header: map[string]string{"If-Match": `"` + got.ETag + `"`}}, http.StatusOK)
	var got2 enrollment.IndividualEnrollment
	r.decode(t, &got2)
	if got2.ETag == got.ETag || got2.DeviceID != "device-one" {
		t.Fatalf("update answer %s", r.body)
	}
	if !got2.CreatedDateTimeUTC.Equal(*got.CreatedDateTimeUTC) {
		t.Errorf("created time changed on update")
	}
	stored, _ = e.st.Enrollments.Get(context.Background(), "dev-1")
	if *stored.Attestation.SymmetricKey != *k1 {
		t.Fatalf("update without keys changed the keys")
	}

	// Update with a new primary key replaces only it.
	nk := newKey(t)
	e.must(req{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-1", nk)}, http.StatusOK)
	stored, _ = e.st.Enrollments.Get(context.Background(), "dev-1")
	if stored.Attestation.SymmetricKey.PrimaryKey != nk || stored.Attestation.SymmetricKey.SecondaryKey != k1.SecondaryKey {
		t.Fatalf("keys after update %+v", stored.Attestation.SymmetricKey)
	}

	// Stale If-Match (bare, as the Node SDK sends it): 412, nothing changed.
	before := e.dump()
	r = e.must(req{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-1"), header: map[string]string{"If-Match": got.ETag}}, http.StatusPreconditionFailed)
	if eb := r.errBody(t); eb.ErrorCode != dps.CodePreconditionFailed {
		t.Errorf("errorCode %d", eb.ErrorCode)
	}
	// If-Match on a missing enrollment: 412, not a create.
	e.must(req{method: http.MethodPut, path: "/enrollments/dev-2", body: symEnrollment("dev-2"), header: map[string]string{"If-Match": "*"}}, http.StatusPreconditionFailed)
	if after := e.dump(); after != before {
		t.Fatalf("a refused PUT changed the store")
	}

	// Delete with a stale ETag fails; without one it works; then 404.
	e.must(req{method: http.MethodDelete, path: "/enrollments/dev-1", header: map[string]string{"If-Match": got.ETag}}, http.StatusPreconditionFailed)
	e.must(req{method: http.MethodDelete, path: "/enrollments/dev-1"}, http.StatusNoContent)
	r = e.must(req{method: http.MethodGet, path: "/enrollments/dev-1"}, http.StatusNotFound)
	if eb := r.errBody(t); eb.ErrorCode != dps.CodeNotFound {
		t.Errorf("errorCode %d", eb.ErrorCode)
	}
	e.must(req{method: http.MethodDelete, path: "/enrollments/dev-1"}, http.StatusNotFound)
}

func TestGroupCRUDKeepsRegistrations(t *testing.T) {
	e := newEnv(t)
	k := newKey(t)
	r := e.must(req{method: http.MethodPut, path: "/enrollmentGroups/grp-1", body: symGroup("grp-1", k)}, http.StatusOK)
	if strings.Contains(string(r.body), k) {
		t.Fatalf("PUT answer carries the key: %s", r.body)
	}
	r = e.must(req{method: http.MethodGet, path: "/enrollmentGroups/grp-1"}, http.StatusOK)
	var g enrollment.EnrollmentGroup
	r.decode(t, &g)
	if g.EnrollmentGroupID != "grp-1" || strings.Contains(string(r.body), k) {
		t.Fatalf("GET answer %s", r.body)
	}
	r = e.must(req{method: http.MethodPost, path: "/enrollmentgroups/grp-1/attestationmechanism"}, http.StatusOK)
	var att enrollment.AttestationMechanism
	r.decode(t, &att)
	if att.SymmetricKey.PrimaryKey != k || att.SymmetricKey.SecondaryKey == "" {
		t.Fatalf("keys answer %s", r.body)
	}

	putRecord(t, e, "dev-a", "grp-1")
	e.must(req{method: http.MethodDelete, path: "/enrollmentGroups/grp-1"}, http.StatusNoContent)
	e.must(req{method: http.MethodGet, path: "/enrollmentGroups/grp-1"}, http.StatusNotFound)
	e.must(req{method: http.MethodGet, path: "/registrations/dev-a"}, http.StatusOK)
}

func putRecord(t *testing.T, e *env, id, group string) *enrollment.Registration {
	t.Helper()
	rec := &enrollment.Registration{RegistrationID: id, DeviceID: id, AssignedHub: "hub-1.example.com", Status: enrollment.RegistrationAssigned, EnrollmentGroupID: group, Substatus: enrollment.SubstatusInitialAssignment}
	if _, err := e.st.Registrations.Put(context.Background(), rec, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestRegistrations(t *testing.T) {
	e := newEnv(t)
	for i := range 7 {
		putRecord(t, e, "dev-"+string(rune('a'+i)), "grp-1")
	}
	putRecord(t, e, "other", "grp-2")
	putRecord(t, e, "solo", "")

	r := e.must(req{method: http.MethodGet, path: "/registrations/DEV-A"}, http.StatusOK)
	var st enrollment.RegistrationState
	r.decode(t, &st)
	if st.RegistrationID != "dev-a" || st.Status != enrollment.RegistrationAssigned || st.AssignedHub != "hub-1.example.com" || st.ETag == "" {
		t.Fatalf("record %s", r.body)
	}

	ids := queryAll(t, e, "/registrations/grp-1/query", 3, func(r reply) []string {
		var out []enrollment.RegistrationState
		r.decode(t, &out)
		var ids []string
		for _, s := range out {
			ids = append(ids, s.RegistrationID)
		}
		return ids
	})
	if len(ids) != 7 {
		t.Fatalf("group query gave %v", ids)
	}
	all := queryAll(t, e, "/registrations/query", 4, func(r reply) []string {
		var out []enrollment.RegistrationState
		r.decode(t, &out)
		var ids []string
		for _, s := range out {
			ids = append(ids, s.RegistrationID)
		}
		return ids
	})
	if len(all) != 9 {
		t.Fatalf("query of all records gave %v", all)
	}

	e.must(req{method: http.MethodDelete, path: "/registrations/dev-a", header: map[string]string{"If-Match": "nope"}}, http.StatusPreconditionFailed)
	e.must(req{method: http.MethodDelete, path: "/registrations/dev-a"}, http.StatusNoContent)
	e.must(req{method: http.MethodGet, path: "/registrations/dev-a"}, http.StatusNotFound)
}

// queryAll pages through a query with the given page size and returns the
// IDs of every page, checking that only the last page lacks a
// continuation.
func queryAll(t *testing.T, e *env, path string, pageSize int, ids func(reply) []string) []string {
	t.Helper()
	var out []string
	cont := ""
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("query does not end")
		}
		h := map[string]string{"x-ms-max-item-count": strconv.Itoa(pageSize)}
		if cont != "" {
			h["x-ms-continuation"] = cont
		}
		r := e.must(req{method: http.MethodPost, path: path, body: `{"query":"*"}`, header: h}, http.StatusOK)
		got := ids(r)
		out = append(out, got...)
		// The server answers the page size it used (capped to its limit).
		if n, err := strconv.Atoi(r.header.Get("x-ms-max-item-count")); err != nil || n > pageSize {
			t.Fatalf("x-ms-max-item-count %q for a requested %d", r.header.Get("x-ms-max-item-count"), pageSize)
		} else {
			pageSize = n
		}
		_, more := r.header["X-Ms-Continuation"]
		if !more {
			if len(got) > pageSize {
				t.Fatalf("last page has %d items, page size %d", len(got), pageSize)
			}
			return out
		}
		if len(got) != pageSize {
			t.Fatalf("page %d has %d items but a continuation", page, len(got))
		}
		cont = r.header.Get("x-ms-continuation")
		if cont == "" {
			t.Fatal("empty x-ms-continuation header: the Node SDK would loop forever")
		}
	}
}

func TestQueryPaging(t *testing.T) {
	e := newEnv(t, func(c *testConfig) { c.MaxPageSize = 10 })
	for i := range 25 {
		e.must(req{method: http.MethodPut, path: "/enrollments/dev-" + strconv.Itoa(100+i), body: symEnrollment("dev-" + strconv.Itoa(100+i))}, http.StatusOK)
	}
	decodeIDs := func(r reply) []string {
		var out []enrollment.IndividualEnrollment
		r.decode(t, &out)
		var ids []string
		for _, x := range out {
			if x.Attestation.SymmetricKey.PrimaryKey != "" {
				t.Fatal("query answer carries keys")
			}
			ids = append(ids, x.RegistrationID)
		}
		return ids
	}
	for _, tc := range []struct {
		name     string
		pageSize int
	}{{"pages of 7", 7}, {"pages of 5 (exact)", 5}, {"capped to MaxPageSize", 500}} {
		t.Run(tc.name, func(t *testing.T) {
			ids := queryAll(t, e, "/enrollments/query", tc.pageSize, decodeIDs)
			if len(ids) != 25 {
				t.Fatalf("got %d enrollments: %v", len(ids), ids)
			}
			seen := map[string]bool{}
			for _, id := range ids {
				if seen[id] {
					t.Fatalf("%s twice", id)
				}
				seen[id] = true
			}
		})
	}
	t.Run("page size answered in kind and capped", func(t *testing.T) {
		r := e.must(req{method: http.MethodPost, path: "/enrollments/query", body: `{"query":"*"}`, header: map[string]string{"x-ms-max-item-count": "500"}}, http.StatusOK)
		if got := r.header.Get("x-ms-max-item-count"); got != "10" {
			t.Errorf("x-ms-max-item-count %q", got)
		}
	})
	t.Run("empty collection answers []", func(t *testing.T) {
		r := e.must(req{method: http.MethodPost, path: "/enrollmentGroups/query", body: `{"query":"*"}`}, http.StatusOK)
		if string(r.body) != "[]" {
			t.Errorf("body %s", r.body)
		}
		if _, ok := r.header["X-Ms-Continuation"]; ok {
			t.Error("continuation on the only page")
		}
	})
	for _, tc := range []struct {
		name   string
		body   string
		header map[string]string
	}{
		{"other query", `{"query":"SELECT * FROM enrollments WHERE x = 1"}`, nil},
		{"bad continuation", `{"query":"*"}`, map[string]string{"x-ms-continuation": "garbage!"}},
		{"bad page size", `{"query":"*"}`, map[string]string{"x-ms-max-item-count": "ten"}},
		{"unknown field", `{"query":"*","x":1}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.must(req{method: http.MethodPost, path: "/enrollments/query", body: tc.body, header: tc.header}, http.StatusBadRequest)
			if eb := r.errBody(t); eb.ErrorCode != dps.CodeBadArgument {
				t.Errorf("errorCode %d", eb.ErrorCode)
			}
		})
	}
}

func TestHubs(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"hub-a.example.com", "hub-b.example.com", "hub-c.example.com"} {
		e.must(req{method: http.MethodPut, path: "/hubs/" + n, body: map[string]any{"name": n, "allocationWeight": 10, "region": "eu"}}, http.StatusOK)
	}
	r := e.must(req{method: http.MethodGet, path: "/hubs/HUB-A.example.com"}, http.StatusOK)
	var h enrollment.Hub
	r.decode(t, &h)
	if h.AllocationWeight != 10 || h.Region != "eu" {
		t.Fatalf("hub %s", r.body)
	}
	r = e.must(req{method: http.MethodGet, path: "/hubs", header: map[string]string{"x-ms-max-item-count": "2"}}, http.StatusOK)
	var hs []enrollment.Hub
	r.decode(t, &hs)
	if len(hs) != 2 || r.header.Get("x-ms-continuation") == "" {
		t.Fatalf("first page %s", r.body)
	}
	r = e.must(req{method: http.MethodGet, path: "/hubs", header: map[string]string{"x-ms-max-item-count": "2", "x-ms-continuation": r.header.Get("x-ms-continuation")}}, http.StatusOK)
	r.decode(t, &hs)
	if _, more := r.header["X-Ms-Continuation"]; len(hs) != 1 || more {
		t.Fatalf("last page %s", r.body)
	}
	e.must(req{method: http.MethodPut, path: "/hubs/hub-a.example.com", body: map[string]any{"name": "hub-a.example.com", "allocationWeight": 1001}}, http.StatusBadRequest)
	e.must(req{method: http.MethodPut, path: "/hubs/hub-a.example.com", body: map[string]any{"name": "hub-b.example.com"}}, http.StatusBadRequest)
	e.must(req{method: http.MethodDelete, path: "/hubs/hub-a.example.com"}, http.StatusNoContent)
	e.must(req{method: http.MethodGet, path: "/hubs/hub-a.example.com"}, http.StatusNotFound)
}

func TestPolicies(t *testing.T) {
	e := newEnv(t)
	r := e.must(req{method: http.MethodPut, path: "/policies/ops", body: map[string]any{"keyName": "ops", "rights": "enrollmentread, EnrollmentWrite"}}, http.StatusOK)
	var p enrollment.SharedAccessPolicy
	r.decode(t, &p)
	if p.Rights != "EnrollmentRead, EnrollmentWrite" || p.PrimaryKey != "" || p.SecondaryKey != "" {
		t.Fatalf("PUT answer %s", r.body)
	}
	r = e.must(req{method: http.MethodPost, path: "/policies/ops/keys"}, http.StatusOK)
	var withKeys enrollment.SharedAccessPolicy
	r.decode(t, &withKeys)
	if withKeys.PrimaryKey == "" || withKeys.SecondaryKey == "" {
		t.Fatalf("keys answer %s", r.body)
	}
	// The new policy authenticates with either key.
	for _, k := range []string{withKeys.PrimaryKey, withKeys.SecondaryKey} {
		e.must(req{method: http.MethodGet, path: "/enrollments/x", token: tokenWith(t, k, e.host, "ops", testNow.Add(time.Hour))}, http.StatusNotFound)
	}
	// Rights are enforced: ops has no ServiceConfig.
	e.must(req{method: http.MethodGet, path: "/policies", token: tokenWith(t, withKeys.PrimaryKey, e.host, "ops", testNow.Add(time.Hour))}, http.StatusForbidden)

	// Updating without keys keeps them.
	e.must(req{method: http.MethodPut, path: "/policies/ops", body: map[string]any{"keyName": "ops", "rights": "EnrollmentRead"}}, http.StatusOK)
	stored, err := e.st.Policies.Get(context.Background(), "ops")
	if err != nil || stored.PrimaryKey != withKeys.PrimaryKey || stored.SecondaryKey != withKeys.SecondaryKey || stored.Rights != "EnrollmentRead" {
		t.Fatalf("after update %+v, %v", stored, err)
	}

	r = e.must(req{method: http.MethodGet, path: "/policies"}, http.StatusOK)
	for _, secret := range []string{e.owner.PrimaryKey, e.owner.SecondaryKey, withKeys.PrimaryKey, e.reader.PrimaryKey} {
		if strings.Contains(string(r.body), secret) {
			t.Fatalf("policy list carries keys: %s", r.body)
		}
	}
	r = e.must(req{method: http.MethodGet, path: "/policies/" + enrollment.OwnerPolicyName}, http.StatusOK)
	if strings.Contains(string(r.body), e.owner.PrimaryKey) {
		t.Fatalf("GET policy carries keys: %s", r.body)
	}

	t.Run("owner cannot be deleted or lose ServiceConfig", func(t *testing.T) {
		before := e.dump()
		e.must(req{method: http.MethodDelete, path: "/policies/ProvisioningServiceOwner"}, http.StatusBadRequest).errBody(t)
		e.must(req{method: http.MethodPut, path: "/policies/" + enrollment.OwnerPolicyName, body: map[string]any{"keyName": enrollment.OwnerPolicyName, "rights": "EnrollmentRead"}}, http.StatusBadRequest).errBody(t)
		if e.dump() != before {
			t.Fatal("store changed")
		}
	})
	e.must(req{method: http.MethodDelete, path: "/policies/ops"}, http.StatusNoContent)
	e.must(req{method: http.MethodGet, path: "/enrollments/x", token: tokenWith(t, withKeys.PrimaryKey, e.host, "ops", testNow.Add(time.Hour))}, http.StatusUnauthorized)
}

func TestSettings(t *testing.T) {
	e := newEnv(t)
	e.must(req{method: http.MethodGet, path: "/settings"}, http.StatusNotFound)
	if _, err := e.st.Settings.Put(context.Background(), &enrollment.Settings{IDScope: "0ne00000001", DefaultAllocationPolicy: enrollment.PolicyHashed}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	r := e.must(req{method: http.MethodPut, path: "/settings", body: map[string]any{"idScope": "0neFFFFFFFF", "defaultAllocationPolicy": "geolatency"}}, http.StatusOK)
	var s enrollment.Settings
	r.decode(t, &s)
	if s.IDScope != "0ne00000001" || s.DefaultAllocationPolicy != enrollment.PolicyGeoLatency {
		t.Fatalf("settings %s", r.body)
	}
	e.must(req{method: http.MethodPut, path: "/settings", body: map[string]any{"defaultAllocationPolicy": "roundrobin"}}, http.StatusBadRequest)
	e.must(req{method: http.MethodPut, path: "/settings", body: map[string]any{"defaultAllocationPolicy": "static"}, header: map[string]string{"If-Match": "old"}}, http.StatusPreconditionFailed)
	r = e.must(req{method: http.MethodGet, path: "/settings"}, http.StatusOK)
	r.decode(t, &s)
	if s.DefaultAllocationPolicy != enrollment.PolicyGeoLatency {
		t.Fatalf("settings %s", r.body)
	}
}
