package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/oidcauth"
	"github.com/zdps/zdps/internal/oidctest"
	"github.com/zdps/zdps/pkg/dps"
)

// bearerEnv is the service API with OIDC bearer tokens checked against a
// real provider's JWKS (internal/oidctest).
func bearerEnv(t *testing.T) (*env, *oidctest.Provider) {
	t.Helper()
	op := oidctest.Start(t, oidctest.Config{Audience: "zdps"})
	p, err := oidcauth.New(context.Background(), oidcauth.Config{
		Issuer: op.Issuer, Audience: "zdps", Logger: discardLogger(),
		Roles:      map[string]string{"viewers": oidcauth.RoleViewer, "admins": oidcauth.RoleAdmin},
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: op.RootCAs}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Bearer()
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, func(c *testConfig) { c.Bearer = b }), op
}

func bearer(t *testing.T, op *oidctest.Provider, sub, email string, groups []string, exp time.Time) string {
	t.Helper()
	tok, err := op.MintAccessToken(map[string]any{"sub": sub, "email": email, "aud": []string{"zdps"}, "exp": exp.Unix(), "groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

func TestBearerTokens(t *testing.T) {
	e, op := bearerEnv(t)
	hour := time.Now().Add(time.Hour)
	admin := bearer(t, op, "u1", "ada@example.com", []string{"admins"}, hour)
	viewer := bearer(t, op, "u2", "vera@example.com", []string{"viewers"}, hour)
	nobody := bearer(t, op, "u3", "", []string{"staff"}, hour)
	expired := bearer(t, op, "u1", "ada@example.com", []string{"admins"}, time.Now().Add(-time.Minute))

	e.must(req{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-1"), token: admin}, http.StatusOK)
	e.must(req{method: http.MethodGet, path: "/enrollments/dev-1", token: viewer}, http.StatusOK)
	e.must(req{method: http.MethodPut, path: "/policies/ops", body: `{"keyName":"ops","rights":"EnrollmentRead"}`, token: admin}, http.StatusOK)

	r := e.must(req{method: http.MethodPut, path: "/enrollments/dev-2", body: symEnrollment("dev-2"), token: viewer}, http.StatusForbidden)
	if eb := r.errBody(t); eb.ErrorCode != dps.CodeForbidden || !strings.Contains(eb.Message, `user "vera@example.com" does not hold the EnrollmentWrite right`) {
		t.Errorf("viewer write: %+v", eb)
	}
	r = e.must(req{method: http.MethodGet, path: "/enrollments/dev-1", token: nobody}, http.StatusForbidden)
	if eb := r.errBody(t); !strings.Contains(eb.Message, `user "u3"`) {
		t.Errorf("no role: %+v", eb)
	}
	e.must(req{method: http.MethodGet, path: "/hubs", token: viewer}, http.StatusForbidden)

	for name, tok := range map[string]string{
		"expired":         expired,
		"garbage":         "Bearer not-a-jwt",
		"empty":           "Bearer ",
		"tampered":        admin[:len(admin)-4] + "AAAA",
		"lowercase other": "bearer " + strings.TrimPrefix(expired, "Bearer "),
	} {
		t.Run(name, func(t *testing.T) {
			r := e.must(req{method: http.MethodGet, path: "/enrollments/dev-1", token: tok}, http.StatusUnauthorized)
			if eb := r.errBody(t); eb.ErrorCode != dps.CodeUnauthorized || !strings.Contains(eb.Message, "bearer token is not valid") {
				t.Errorf("%+v", eb)
			}
			if got := r.header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
				t.Errorf("WWW-Authenticate %q", got)
			}
		})
	}

	logs := e.logs.String()
	if !strings.Contains(logs, "token expired at") {
		t.Error("the log does not say why the expired token was refused")
	}
	for _, tok := range []string{admin, viewer, expired} {
		if strings.Contains(logs, strings.TrimPrefix(tok, "Bearer ")[40:80]) {
			t.Fatal("a token reached the log")
		}
	}
	var actors []string
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "audit" {
			actors = append(actors, m["actor"].(string))
		}
	}
	if len(actors) != 2 || actors[0] != "user:ada@example.com" || actors[1] != "user:ada@example.com" {
		t.Errorf("audit actors %v, want the admin user twice", actors)
	}
}

func TestBearerWithoutOIDC(t *testing.T) {
	e := newEnv(t)
	r := e.must(req{method: http.MethodGet, path: "/enrollments/dev-1", token: "Bearer a.b.c"}, http.StatusUnauthorized)
	if eb := r.errBody(t); eb.ErrorCode != dps.CodeUnauthorized {
		t.Errorf("%+v", eb)
	}
	if !strings.Contains(e.logs.String(), "OIDC is not configured") {
		t.Error("the log does not say OIDC is off")
	}
	// SAS answers are unchanged: no bearer challenge.
	r = e.must(req{method: http.MethodGet, path: "/enrollments/dev-1", token: "SharedAccessSignature sr=x&sig=y&se=1&skn=owner"}, http.StatusUnauthorized)
	if r.header.Get("WWW-Authenticate") != "" || !strings.Contains(r.errBody(t).Message, "SharedAccessSignature") {
		t.Errorf("SAS refusal changed: %q %+v", r.header.Get("WWW-Authenticate"), r.errBody(t))
	}
}
