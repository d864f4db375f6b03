package logincmd

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil/cmdtest"
	"github.com/zdps/zdps/internal/oidctest"
	"github.com/zdps/zdps/pkg/dps"
)

// server is a stand-in for zdps answering GET /auth/oidc with info (404
// when nil); the full flow against a real zdps serve is in cmd/zdps.
func server(t *testing.T, info *dps.OIDCConfig) (host, caFile string) {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info == nil || r.URL.Path != dps.OIDCConfigPath {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(info)
	}))
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(srv.URL, "https://"), caFile
}

func TestLoginRefusals(t *testing.T) {
	op := oidctest.Start(t, oidctest.Config{
		Audience: "zdps",
		Users:    []oidctest.User{{ID: "u1", Username: "vera", Password: "pw", Groups: []string{"viewers"}}},
		Clients:  []oidctest.Client{{ID: "zdps-cli"}},
	})
	tokenFile := filepath.Join(t.TempDir(), "token.json")
	run := cmdtest.RunnerWithEnv(map[string]string{"ZDPS_TOKEN_FILE": tokenFile}, NewLoginCmd, NewLogoutCmd)

	off, offCA := server(t, nil)
	noCLI, noCLICA := server(t, &dps.OIDCConfig{Issuer: op.Issuer, Audience: "zdps"})
	on, onCA := server(t, &dps.OIDCConfig{Issuer: op.Issuer, ClientID: "zdps-cli", Audience: "zdps", Scopes: []string{"openid", "offline_access"}})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no server", []string{"login"}, "--server is required"},
		{"OIDC off", []string{"login", "--server", off, "--ca-file", offCA}, "has no single sign-on configured"},
		{"no CLI client", []string{"login", "--server", noCLI, "--ca-file", noCLICA}, "names no client for the CLI"},
		{"issuer not trusted", []string{"login", "--server", on, "--ca-file", onCA}, "does not answer discovery"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := run(t, tc.args...)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %q", code, stderr, tc.want)
			}
		})
	}

	// The user denies the code at the provider.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		if code, err := op.NextUserCode(ctx); err == nil {
			_ = op.ApproveDevice(ctx, code, "vera", "pw", true)
		}
	}()
	code, _, stderr := run(t, "login", "--server", on, "--ca-file", onCA, "--issuer-ca-file", op.CAFile)
	if code == 0 || !strings.Contains(stderr, "the sign-in was denied") || !strings.Contains(stderr, "enter the code") {
		t.Fatalf("denied: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(tokenFile); err == nil {
		t.Fatal("a denied sign-in stored a token")
	}
	if code, _, stderr := run(t, "logout"); code != 0 || !strings.Contains(stderr, "Not signed in") {
		t.Fatalf("logout without login: %d %q", code, stderr)
	}
}
