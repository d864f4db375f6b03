package api

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/store"
	"github.com/zdps/zdps/pkg/store/memory"
)

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	host, port := splitHostPort(e.host)
	other := &enrollment.SharedAccessPolicy{KeyName: enrollment.OwnerPolicyName, PrimaryKey: newKey(t)}
	for _, tc := range []struct {
		name   string
		token  string
		status int
	}{
		{"owner primary key", e.ownerTok, http.StatusNotFound},
		{"owner secondary key", tokenWith(t, e.owner.SecondaryKey, e.host, e.owner.KeyName, testNow.Add(time.Hour)), http.StatusNotFound},
		{"host without port", e.token(e.owner, host, time.Hour), http.StatusNotFound},
		{"host in upper case", e.token(e.owner, strings.ToUpper(host)+":"+port, time.Hour), http.StatusNotFound},
		{"sr percent-encoded", e.token(e.owner, url.QueryEscape(e.host), time.Hour), http.StatusNotFound},
		{"expired within skew", e.token(e.owner, e.host, -time.Minute), http.StatusNotFound},
		{"no token", "", http.StatusUnauthorized},
		{"not a SAS", "Bearer abc", http.StatusUnauthorized},
		{"malformed SAS", "SharedAccessSignature sr=x&sig=%%%&se=1", http.StatusUnauthorized},
		{"expired", e.token(e.owner, e.host, -time.Hour), http.StatusUnauthorized},
		{"forged signature", tokenWith(t, other.PrimaryKey, e.host, enrollment.OwnerPolicyName, testNow.Add(time.Hour)), http.StatusUnauthorized},
		{"unknown policy", tokenWith(t, e.owner.PrimaryKey, e.host, "nobody", testNow.Add(time.Hour)), http.StatusUnauthorized},
		{"no skn", tokenWith(t, e.owner.PrimaryKey, e.host, "", testNow.Add(time.Hour)), http.StatusUnauthorized},
		{"wrong sr", e.token(e.owner, "evil.example.com", time.Hour), http.StatusUnauthorized},
		{"wrong port", e.token(e.owner, host+":1", time.Hour), http.StatusUnauthorized},
		{"device resource", e.token(e.owner, "0ne00000001/registrations/dev-1", time.Hour), http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(req{method: http.MethodGet, path: "/enrollments/dev-1", token: tc.token, noToken: tc.token == ""})
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if eb := r.errBody(t); tc.status == http.StatusUnauthorized && eb.ErrorCode != codeUnauthorized {
				t.Errorf("errorCode %d", eb.ErrorCode)
			}
		})
	}
	t.Run("healthz needs no token", func(t *testing.T) {
		r := e.must(req{method: http.MethodGet, path: "/healthz", noToken: true}, http.StatusOK)
		if string(r.body) != `{"status":"ok"}` {
			t.Errorf("body %s", r.body)
		}
	})
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
			if eb := r.errBody(t); eb.ErrorCode != codeForbidden {
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
}

// TestEveryRouteNeedsAuth calls every authenticated route without a token
// and with a token of a policy that has no rights it needs.
func TestEveryRouteNeedsAuth(t *testing.T) {
	e := newEnv(t)
	// A policy with only RegistrationStatusWrite lacks every other right.
	w := e.seedPolicy("regwriter", enrollment.RightRegistrationStatusWrite)
	for k, right := range routeRights {
		if right == rightPublic {
			continue
		}
		method, pattern, _ := strings.Cut(k, " ")
		path := strings.NewReplacer("{registrationId}", "dev-1", "{enrollmentGroupId}", "grp-1", "{name}", "hub.example.com", "{keyName}", "reader").Replace(pattern)
		t.Run(k, func(t *testing.T) {
			e.must(req{method: method, path: path, noToken: true}, http.StatusUnauthorized).errBody(t)
			if right != enrollment.RightRegistrationStatusWrite {
				e.must(req{method: method, path: path, token: e.token(w, e.host, time.Hour)}, http.StatusForbidden).errBody(t)
			}
		})
	}
}
