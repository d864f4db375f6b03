package robustness

import (
	"context"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/zdps/zdps/internal/oidcauth"
	"github.com/zdps/zdps/internal/oidctest"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/enrollment"
)

// TestAuthorizationMatrixOIDC is the matrix with OIDC bearer tokens of a
// real provider against zdps serve --oidc-*: each role admits exactly its
// rights' routes, a user without a role is forbidden everywhere, and a
// token refused for any reason is 401 on every authenticated route; SAS
// keeps working beside it.
func TestAuthorizationMatrixOIDC(t *testing.T) {
	op := oidctest.Start(t, oidctest.Config{
		Audience: "zdps",
		Users:    []oidctest.User{{ID: "u-mgr", Username: "manu", Password: "pw", Email: "manu@example.com", Groups: []string{"managers"}}},
		Clients:  []oidctest.Client{{ID: "zdps-cli"}},
	})
	srv := zdpstest.Start(t, "--oidc-issuer", op.Issuer, "--oidc-ca-file", op.CAFile, "--oidc-audience", "zdps",
		"--oidc-role", "viewers=viewer", "--oidc-role", "managers=enrollment-manager", "--oidc-role", "admins=admin")

	soon := time.Now().Add(time.Hour)
	mint := func(claims map[string]any) string {
		t.Helper()
		c := map[string]any{"sub": "u-1", "aud": []string{"zdps"}, "exp": soon.Unix()}
		for k, v := range claims {
			c[k] = v
		}
		tok, err := op.MintAccessToken(c)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	creds := []authzCredential{
		{"OIDC viewer", mint(map[string]any{"groups": []string{"viewers", "staff"}}), oidcauth.Presets[oidcauth.RoleViewer]},
		{"OIDC admin", mint(map[string]any{"groups": []string{"admins"}}), enrollment.AllRights},
		{"OIDC user without a role", mint(map[string]any{"groups": []string{"staff"}}), []string{}},
		{"OIDC expired", mint(map[string]any{"groups": []string{"admins"}, "exp": time.Now().Add(-time.Minute).Unix()}), nil},
		{"OIDC other audience", mint(map[string]any{"groups": []string{"admins"}, "aud": []string{"other"}}), nil},
		{"OIDC other issuer", mint(map[string]any{"groups": []string{"admins"}, "iss": "https://evil.example.com"}), nil},
		{"OIDC not a JWT", "Bearer abc", nil},
	}
	// One token from the provider's own device grant, as zdps login gets it.
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, op.HTTPClient())
	cfg := oauth2.Config{ClientID: "zdps-cli", Scopes: []string{"openid"}, Endpoint: oauth2.Endpoint{
		DeviceAuthURL: op.Issuer + "/device_authorization", TokenURL: op.Issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := op.ApproveDevice(ctx, da.UserCode, "manu", "pw", false); err != nil {
		t.Fatal(err)
	}
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	creds = append(creds, authzCredential{"OIDC enrollment manager (device grant)", "Bearer " + tok.AccessToken, oidcauth.Presets[oidcauth.RoleEnrollmentManager]})
	creds = append(creds, authzCredentials(t, srv)[:1]...) // the owner's SAS
	authzMatrix(t, srv, creds)
}
