package cmdutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func globalsWith(env map[string]string) *Globals {
	return NewGlobals(Options{Getenv: func(k string) string { return env[k] }})
}

func TestTokenFile(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{EnvTokenFile: "/x/t.json", "HOME": "/h"}, "/x/t.json"},
		{map[string]string{"XDG_CONFIG_HOME": "/cfg", "HOME": "/h"}, "/cfg/zdps/token.json"},
		{map[string]string{"HOME": "/h"}, "/h/.config/zdps/token.json"},
	} {
		if got, err := globalsWith(tc.env).TokenFile(); err != nil || got != tc.want {
			t.Errorf("%v: %q %v, want %q", tc.env, got, err, tc.want)
		}
	}
	if _, err := globalsWith(nil).TokenFile(); err == nil {
		t.Error("no HOME and no $ZDPS_TOKEN_FILE: no error")
	}
}

func TestLoginFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "token.json")
	g := globalsWith(map[string]string{EnvTokenFile: path})
	if l, _, err := g.LoadLogin(); l != nil || err != nil {
		t.Fatalf("no file: %v %v", l, err)
	}
	want := &Login{Server: "dps:8443", Issuer: "https://idp", ClientID: "cli", TokenURL: "https://idp/token",
		Token: &oauth2.Token{AccessToken: "a", RefreshToken: "r", Expiry: time.Unix(1_800_000_000, 0).UTC()}}
	if err := SaveLogin(path, want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	got, _, err := g.LoadLogin()
	if err != nil || got.Server != want.Server || got.Token.RefreshToken != "r" || !got.Token.Expiry.Equal(want.Token.Expiry) {
		t.Fatalf("%+v %v", got, err)
	}
	if err := os.WriteFile(path, []byte(`{"server":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.LoadLogin(); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged file: %v", err)
	}
	// A connection string given explicitly wins over the stored login.
	if !globalsWith(map[string]string{EnvConnectionString: "HostName=x"}).explicitConnection() || g.explicitConnection() {
		t.Error("explicitConnection")
	}
}
