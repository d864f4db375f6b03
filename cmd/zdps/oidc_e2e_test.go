package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/zdps/zdps/internal/oidctest"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// The tests in this file run a real OpenID provider (internal/oidctest)
// and a real `zdps serve` (internal/zdpstest) with the --oidc-* flags.

const oidcPassword = "correct horse"

func oidcServer(t *testing.T) (*oidctest.Provider, *zdpstest.Server) {
	t.Helper()
	op := oidctest.Start(t, oidctest.Config{
		Audience: "zdps",
		Users: []oidctest.User{
			{ID: "u-ada", Username: "ada", Password: oidcPassword, Email: "ada@example.com", Groups: []string{"dps-admins"}},
			{ID: "u-vera", Username: "vera", Password: oidcPassword, Email: "vera@example.com", Groups: []string{"dps-viewers"}},
		},
		Clients: []oidctest.Client{{ID: "zdps-cli"}},
	})
	s := zdpstest.Start(t, "--oidc-issuer", op.Issuer, "--oidc-ca-file", op.CAFile, "--oidc-audience", "zdps",
		"--oidc-role", "dps-admins=admin", "--oidc-role", "dps-viewers=viewer", "--oidc-cli-client-id", "zdps-cli")
	return op, s
}

// deviceGrant signs username in with the device authorization grant, as
// zdps login does, approving the code at the provider.
func deviceGrant(t *testing.T, op *oidctest.Provider, username string) string {
	t.Helper()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, op.HTTPClient())
	cfg := oauth2.Config{ClientID: "zdps-cli", Scopes: []string{"openid", "email"}, Endpoint: oauth2.Endpoint{
		DeviceAuthURL: op.Issuer + "/device_authorization", TokenURL: op.Issuer + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
	da, err := cfg.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := op.ApproveDevice(ctx, da.UserCode, username, oidcPassword, false); err != nil {
		t.Fatal(err)
	}
	tok, err := cfg.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func bearerClient(t *testing.T, s *zdpstest.Server, tok string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{HostName: s.Addr(), RootCAs: s.RootCAs(),
		BearerToken: func(context.Context) (string, error) { return tok, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func symmetricEnrollment(id string) *enrollment.IndividualEnrollment {
	return &enrollment.IndividualEnrollment{RegistrationID: id, Spec: enrollment.Spec{
		Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}}}
}

func TestOIDCBearerTokensOnTheServiceAPI(t *testing.T) {
	op, s := oidcServer(t)
	ctx := context.Background()

	// zdps login's discovery: unauthenticated, nothing secret.
	resp, err := s.HTTPClient().Get("https://" + s.Addr() + dps.OIDCConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var info dps.OIDCConfig
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", dps.OIDCConfigPath, resp.StatusCode, err)
	}
	resp.Body.Close()
	if info.Issuer != op.Issuer || info.ClientID != "zdps-cli" || info.Audience != "zdps" || !strings.Contains(strings.Join(info.Scopes, " "), "offline_access") {
		t.Fatalf("OIDC config %+v", info)
	}

	admin := bearerClient(t, s, deviceGrant(t, op, "ada"))
	viewer := bearerClient(t, s, deviceGrant(t, op, "vera"))
	if _, err := admin.PutEnrollment(ctx, symmetricEnrollment("sso-dev-1"), ""); err != nil {
		t.Fatalf("admin writes an enrollment: %v", err)
	}
	if _, err := admin.GetSettings(ctx); err != nil {
		t.Fatalf("admin reads the settings (ServiceConfig): %v", err)
	}
	if got, err := viewer.GetEnrollment(ctx, "sso-dev-1"); err != nil || got.RegistrationID != "sso-dev-1" {
		t.Fatalf("viewer reads: %v", err)
	}
	var ae *client.APIError
	if _, err := viewer.PutEnrollment(ctx, symmetricEnrollment("sso-dev-2"), ""); !errors.As(err, &ae) || ae.StatusCode != http.StatusForbidden || ae.ErrorCode != dps.CodeForbidden {
		t.Fatalf("viewer writes: %v, want 403", err)
	}
	if _, err := viewer.EnrollmentKeys(ctx, "sso-dev-1"); !errors.As(err, &ae) || ae.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer reads keys: %v, want 403", err)
	}
	if _, err := bearerClient(t, s, "a.b.c").GetEnrollment(ctx, "sso-dev-1"); !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized || ae.ErrorCode != dps.CodeUnauthorized {
		t.Fatalf("forged token: %v, want 401", err)
	}
	// The security operations routes (internal/opsapi) take the same check.
	if _, err := admin.Posture(ctx); err != nil {
		t.Fatalf("admin reads the posture: %v", err)
	}
	if _, err := viewer.Posture(ctx); !errors.As(err, &ae) || ae.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer reads the posture: %v, want 403", err)
	}
	// SAS keeps working beside OIDC.
	if _, err := s.Client().GetEnrollment(ctx, "sso-dev-1"); err != nil {
		t.Fatal(err)
	}

	// The audit trail names the user who wrote.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var actors []string
		for ev, err := range s.Client().AllAuditEvents(ctx, client.AuditQuery{Action: "enrollment."}) {
			if err != nil {
				t.Fatal(err)
			}
			if ev.Resource == "enrollment/sso-dev-1" {
				actors = append(actors, ev.Actor)
			}
		}
		if len(actors) == 1 && actors[0] == "user:ada@example.com" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit actors of sso-dev-1: %v, want [user:ada@example.com]", actors)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if strings.Contains(s.Logs(), "eyJ") {
		t.Error("a JWT reached the server log")
	}
}

var codeLine = regexp.MustCompile(`enter the code (\S+)`)

// zdps runs the CLI binary with env and returns its exit status and
// output.
func zdps(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(zdpstest.Binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

func TestOIDCLoginDeviceFlow(t *testing.T) {
	op, s := oidcServer(t)
	home := t.TempDir()
	tokenFile := filepath.Join(home, "cfg", "token.json")
	env := []string{"ZDPS_TOKEN_FILE=" + tokenFile, "ZDPS_CONNECTION_STRING=", "HOME=" + home, "ZDPS_DATA_DIR=" + filepath.Join(home, "no-data")}
	s.SymmetricKeyEnrollment("cli-dev-1")

	// Without a login, and with no connection string, the CLI has no way in.
	if code, out := zdps(t, env, "enrollment", "list", "--ca-file", s.CAFile()); code == 0 {
		t.Fatalf("enrollment list without credentials succeeded: %s", out)
	}

	login := exec.Command(zdpstest.Binary(t), "login", "--server", s.Addr(), "--ca-file", s.CAFile(), "--issuer-ca-file", op.CAFile)
	login.Env = append(os.Environ(), env...)
	stderr, err := login.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := login.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stderr)
	approved := false
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if m := codeLine.FindStringSubmatch(sc.Text()); m != nil && !approved {
			if !strings.Contains(sc.Text(), op.DeviceURL()) {
				t.Errorf("login does not show the verification URL: %s", sc.Text())
			}
			if err := op.ApproveDevice(context.Background(), m[1], "ada", oidcPassword, false); err != nil {
				t.Fatal(err)
			}
			approved = true
		}
	}
	_, _ = io.Copy(io.Discard, stderr)
	if err := login.Wait(); err != nil || !approved {
		t.Fatalf("zdps login: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "Signed in to "+s.Addr()+" as ada@example.com") {
		t.Errorf("login output:\n%s", out.String())
	}
	fi, err := os.Stat(tokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}

	list := func() string {
		t.Helper()
		code, out := zdps(t, env, "enrollment", "list", "--ca-file", s.CAFile(), "-o", "json")
		if code != 0 || !strings.Contains(out, "cli-dev-1") {
			t.Fatalf("enrollment list with the stored token: %d\n%s", code, out)
		}
		return out
	}
	list()

	// An expired access token is refreshed with the refresh token and
	// stored again.
	var l struct {
		Token struct {
			AccessToken  string    `json:"access_token"`
			RefreshToken string    `json:"refresh_token"`
			Expiry       time.Time `json:"expiry"`
		} `json:"token"`
	}
	b, _ := os.ReadFile(tokenFile)
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(b, &l)
	if l.Token.RefreshToken == "" {
		t.Fatal("no refresh token stored")
	}
	raw["token"].(map[string]any)["expiry"] = time.Now().Add(-time.Hour).Format(time.RFC3339)
	b, _ = json.Marshal(raw)
	if err := os.WriteFile(tokenFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	before := l.Token.AccessToken
	list()
	b, _ = os.ReadFile(tokenFile)
	_ = json.Unmarshal(b, &l)
	if l.Token.AccessToken == before || !l.Token.Expiry.After(time.Now()) {
		t.Error("the expired token was not refreshed and stored")
	}

	// A connection string given explicitly wins over the stored token.
	if code, out := zdps(t, append(env, "ZDPS_CONNECTION_STRING="+s.ConnectionString()), "enrollment", "list", "--ca-file", s.CAFile()); code != 0 {
		t.Fatalf("with a connection string: %s", out)
	}

	copied, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if code, out := zdps(t, env, "logout"); code != 0 || !strings.Contains(out, "Signed out of "+s.Addr()) || strings.Contains(out, "warning") {
		t.Fatalf("logout: %d %s", code, out)
	}
	// Logout revoked the refresh token at the provider: a copy of the
	// file cannot be renewed any more.
	if err := os.WriteFile(tokenFile+".copy", copied, 0o600); err != nil {
		t.Fatal(err)
	}
	raw = nil
	_ = json.Unmarshal(copied, &raw)
	raw["token"].(map[string]any)["expiry"] = time.Now().Add(-time.Hour).Format(time.RFC3339)
	b, _ = json.Marshal(raw)
	if err := os.WriteFile(tokenFile+".copy", b, 0o600); err != nil {
		t.Fatal(err)
	}
	copyEnv := append(append([]string{}, env...), "ZDPS_TOKEN_FILE="+tokenFile+".copy")
	if code, out := zdps(t, copyEnv, "enrollment", "list", "--ca-file", s.CAFile()); code == 0 || !strings.Contains(out, "run zdps login again") {
		t.Fatalf("a copy of the logged-out token: %d %s", code, out)
	}
	if _, err := os.Stat(tokenFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("logout left the token file")
	}
	if code, _ := zdps(t, env, "enrollment", "list", "--ca-file", s.CAFile()); code == 0 {
		t.Fatal("enrollment list after logout succeeded")
	}
}
