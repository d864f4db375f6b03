package api

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// The authentication cases (owner keys in every accepted form, tokens
// refused for each reason) and the refusal of every route without the
// right run against a real server for every route of Routes():
// test/robustness, TestAuthorizationMatrix.

func TestHealthzNeedsNoToken(t *testing.T) {
	e := newEnv(t)
	r := e.must(req{method: http.MethodGet, path: "/healthz", noToken: true}, http.StatusOK)
	if string(r.body) != `{"status":"ok"}` {
		t.Errorf("body %s", r.body)
	}
}

func TestReadOnlyPolicy(t *testing.T) {
	e := newEnv(t)
	e.must(req{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-1")}, http.StatusOK)
	tok := e.token(e.reader, e.host, time.Hour)
	e.must(req{method: http.MethodGet, path: "/enrollments/dev-1", token: tok}, http.StatusOK)
	e.must(req{method: http.MethodPost, path: "/enrollments/query", body: `{"query":"*"}`, token: tok}, http.StatusOK)
	before := e.dump()
	for _, q := range []req{
		{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-1")},
		{method: http.MethodPut, path: "/enrollments/dev-2", body: symEnrollment("dev-2")},
		{method: http.MethodDelete, path: "/enrollments/dev-1"},
		{method: http.MethodPost, path: "/enrollments/dev-1/attestationmechanism"},
		{method: http.MethodPost, path: "/enrollments", body: map[string]any{"mode": "create", "enrollments": []any{symEnrollment("dev-3")}}},
		{method: http.MethodPut, path: "/enrollmentGroups/g", body: symGroup("g")},
		{method: http.MethodGet, path: "/registrations/dev-1"},
		{method: http.MethodDelete, path: "/registrations/dev-1"},
		{method: http.MethodGet, path: "/hubs"},
		{method: http.MethodGet, path: "/policies"},
		{method: http.MethodPut, path: "/policies/reader", body: map[string]any{"keyName": "reader", "rights": "ServiceConfig"}},
		{method: http.MethodPut, path: "/settings", body: map[string]any{"defaultAllocationPolicy": "static"}},
	} {
		t.Run(q.method+" "+q.path, func(t *testing.T) {
			q.token = tok
			r := e.must(q, http.StatusForbidden)
			if eb := r.errBody(t); eb.ErrorCode != dps.CodeForbidden {
				t.Errorf("errorCode %d", eb.ErrorCode)
			}
		})
	}
	if e.dump() != before {
		t.Fatal("a refused request changed the store")
	}
}

// TestRouteRights derives the route list from the router itself: every
// route must have a declared right, and every declared right a route.
func TestRouteRights(t *testing.T) {
	a, err := New(Config{Store: store.New(memory.New(), nil), HostName: "localhost", Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	err = chi.Walk(a.Handler().(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes[method+" "+route] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range routes {
		keys = append(keys, k)
		if _, ok := routeRights[k]; !ok {
			t.Errorf("route %s has no declared right", k)
		}
	}
	for k, right := range routeRights {
		if !routes[k] {
			t.Errorf("right %q is declared for %s, which is no route", right, k)
		}
		if right != rightPublic && !slices.Contains(enrollment.AllRights, right) {
			t.Errorf("%s requires %q, which is not a right", k, right)
		}
	}
	if routeRights["GET /healthz"] != rightPublic {
		t.Error("healthz must be public")
	}
	// The only routes without authentication: health and the CRL (public
	// by nature, protected by its signature).
	public := []string{"GET /healthz", "GET /crl"}
	for k, right := range routeRights {
		if right == rightPublic && !slices.Contains(public, k) {
			t.Errorf("%s is public", k)
		}
	}
	slices.Sort(keys)
	t.Logf("%d routes: %v", len(keys), keys)
	// The exported table is the same, public routes without a right.
	exported := Routes()
	if len(exported) != len(routeRights) {
		t.Errorf("Routes() has %d routes, the router %d", len(exported), len(routeRights))
	}
	for _, r := range exported {
		want := routeRights[r.Method+" "+r.Pattern]
		if want == rightPublic {
			want = ""
		}
		if r.Right != want {
			t.Errorf("Routes(): %s %s needs %q, declared %q", r.Method, r.Pattern, r.Right, want)
		}
	}
}
