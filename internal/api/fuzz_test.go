package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// FuzzBulkHandler sends arbitrary bodies through the whole handler chain
// of the bulk calls. Properties: never a server fault; always JSON; a
// refused call changes nothing; an accepted call reports every item it did
// not apply, and every item it did apply is stored (or gone, for delete)
// and valid.
func FuzzBulkHandler(f *testing.F) {
	f.Add(false, []byte(`{"mode":"create","enrollments":[{"registrationId":"a","attestation":{"type":"symmetricKey"}}]}`))
	f.Add(false, []byte(`{"mode":"update","enrollments":[{"registrationId":"seed","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"AAAAAAAAAAAAAAAAAAAAAA=="}}},{"registrationId":"-x"}]}`))
	f.Add(false, []byte(`{"mode":"updateIfMatchETag","enrollments":[{"registrationId":"seed","etag":"x","attestation":{"type":"symmetricKey"}}]}`))
	f.Add(false, []byte(`{"mode":"delete","enrollments":[{"registrationId":"seed"},{"registrationId":"none"}]}`))
	f.Add(true, []byte(`{"mode":"create","enrollmentGroups":[{"enrollmentGroupId":"g","attestation":{"type":"symmetricKey"}},{"enrollmentGroupId":"g"}]}`))
	f.Add(true, []byte(`{"mode":"CREATE","enrollmentGroups":[null]}`))

	owner := &enrollment.SharedAccessPolicy{KeyName: enrollment.OwnerPolicyName, Rights: strings.Join(enrollment.AllRights, ", "), PrimaryKey: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))}
	key, _ := base64.StdEncoding.DecodeString(owner.PrimaryKey)
	token := sas.Build(key, "localhost", owner.KeyName, testNow.Add(time.Hour))

	f.Fuzz(func(t *testing.T, groups bool, body []byte) {
		ctx := context.Background()
		st := store.New(memory.New(), func() time.Time { return testNow })
		if _, err := st.Policies.Put(ctx, owner, store.Condition{}); err != nil {
			t.Fatal(err)
		}
		seed := &enrollment.IndividualEnrollment{RegistrationID: "seed", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: owner.PrimaryKey, SecondaryKey: owner.PrimaryKey}}}}
		if _, err := st.Enrollments.Put(ctx, seed, store.Condition{}); err != nil {
			t.Fatal(err)
		}
		a, err := New(Config{Store: st, HostName: "localhost", Logger: discardLogger(), Now: func() time.Time { return testNow }, MaxBulkItems: 50, MaxBodyBytes: 1 << 16})
		if err != nil {
			t.Fatal(err)
		}
		before := dumpStore(t, st)

		path := "/enrollments/"
		if groups {
			path = "/enrollmentgroups"
		}
		rq := httptest.NewRequestWithContext(ctx, http.MethodPost, path+"?api-version=2021-10-01", bytes.NewReader(body))
		rq.Header.Set("Authorization", token)
		rec := httptest.NewRecorder()
		a.Handler().ServeHTTP(rec, rq)

		if rec.Code >= 500 {
			t.Fatalf("server fault %d: %s", rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" || !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer %q %s", ct, rec.Body)
		}
		if rec.Code != http.StatusOK {
			if dumpStore(t, st) != before {
				t.Fatalf("refused call (%d) changed the store", rec.Code)
			}
			return
		}

		// Accepted: compare what the server says with what is stored.
		var res struct {
			IsSuccessful bool
			Errors       []map[string]any
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		if res.IsSuccessful != (len(res.Errors) == 0) {
			t.Fatalf("isSuccessful %v with %d errors", res.IsSuccessful, len(res.Errors))
		}
		failed := map[string]bool{}
		idField := "registrationId"
		if groups {
			idField = "enrollmentGroupId"
		}
		for _, e := range res.Errors {
			id, _ := e[idField].(string)
			failed[id] = true
		}
		var mode string
		var ids []string
		if groups {
			op, err := enrollment.DecodeBulkEnrollmentGroups(body)
			if err != nil {
				t.Fatalf("accepted a body the decoder refuses: %v", err)
			}
			mode = op.Mode
			for _, g := range op.EnrollmentGroups {
				ids = append(ids, g.EnrollmentGroupID)
			}
		} else {
			op, err := enrollment.DecodeBulkEnrollments(body)
			if err != nil {
				t.Fatalf("accepted a body the decoder refuses: %v", err)
			}
			mode = op.Mode
			for _, e := range op.Enrollments {
				ids = append(ids, e.RegistrationID)
			}
		}
		for _, id := range ids {
			if failed[id] {
				continue
			}
			var err error
			if groups {
				var g *enrollment.EnrollmentGroup
				if g, err = st.Groups.Get(ctx, id); err == nil {
					err = g.Validate()
				}
			} else {
				var e *enrollment.IndividualEnrollment
				if e, err = st.Enrollments.Get(ctx, id); err == nil {
					err = e.Validate()
				}
			}
			switch {
			case mode == enrollment.BulkDelete && !errors.Is(err, store.ErrNotFound):
				t.Fatalf("%q reported deleted but: %v", id, err)
			case mode != enrollment.BulkDelete && err != nil:
				t.Fatalf("%q reported written but: %v", id, err)
			}
		}
	})
}

func dumpStore(t *testing.T, st *store.Store) string {
	t.Helper()
	var b strings.Builder
	err := st.Backend.View(context.Background(), func(tx store.Tx) error {
		for _, bk := range []store.Bucket{store.BucketEnrollments, store.BucketGroups, store.BucketPolicies} {
			items, err := tx.Scan(context.Background(), bk, "", "", 0)
			if err != nil {
				return err
			}
			for _, it := range items {
				b.WriteString(string(bk) + "/" + it.Key + " " + it.ETag + "\n")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
