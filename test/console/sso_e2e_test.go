package console_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/zdps/zdps/internal/oidctest"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/client"
)

const ssoPassword = "correct horse"

// ssoSignIn signs username in through the provider's form, starting at
// the console's "Sign in with SSO".
func ssoSignIn(t *testing.T, ctx context.Context, s *zdpstest.Server, username string) {
	t.Helper()
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "sign in with SSO as "+username,
		chromedp.Navigate(url(s, "/console/signin")),
		chromedp.WaitVisible(chromedp.ID("sso")),
		chromedp.Click(chromedp.ID("sso")),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SetValue(chromedp.ID("username"), username),
		chromedp.SetValue(chromedp.ID("password"), ssoPassword),
		chromedp.Click(chromedp.ID("submit")))
}

// TestConsoleSSOInChromium signs users in to the console through a real
// OpenID provider (internal/oidctest) in a real browser: the roles their
// groups map to decide what they may do.
func TestConsoleSSOInChromium(t *testing.T) {
	ctx := browser(t)
	op := oidctest.Start(t, oidctest.Config{Users: []oidctest.User{
		{ID: "u-vera", Username: "vera", Password: ssoPassword, Email: "vera@example.com", Groups: []string{"dps-viewers"}},
		{ID: "u-ada", Username: "ada", Password: ssoPassword, Email: "ada@example.com", Groups: []string{"dps-admins"}},
		{ID: "u-nora", Username: "nora", Password: ssoPassword, Email: "nora@example.com", Groups: []string{"staff"}},
	}})
	secret := filepath.Join(t.TempDir(), "console-secret")
	if err := os.WriteFile(secret, []byte("console-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := zdpstest.Start(t, "--oidc-issuer", op.Issuer, "--oidc-ca-file", op.CAFile,
		"--oidc-client-id", "zdps-console", "--oidc-client-secret-file", secret,
		"--oidc-role", "dps-viewers=viewer", "--oidc-role", "dps-admins=admin")
	// The redirect URI names the server's port, known once it runs.
	op.AddClient(oidctest.Client{ID: "zdps-console", Secret: "console-secret-0123456789",
		RedirectURIs: []string{"https://" + s.Addr() + "/console/sso/callback"}})
	api := s.Client()
	bg := context.Background()

	// An admin writes through the UI; the trail names the user.
	ssoSignIn(t, ctx, s, "ada")
	do(t, ctx, "admin signed in", waitFor("/console"), chromedp.WaitVisible(chromedp.ID("who")))
	if who := get(t, ctx, "who", chromedp.Text(chromedp.ID("who"))); who != "user:ada@example.com" {
		t.Fatalf("signed in as %q", who)
	}
	do(t, ctx, "admin creates an enrollment",
		chromedp.Navigate(url(s, "/console/enrollments")),
		chromedp.WaitVisible(chromedp.ID("create")),
		chromedp.SetValue(chromedp.CSS(`#create input[name=id]`), "sso-made-1"),
		chromedp.Click(chromedp.ID("create-submit")),
		waitFor("/console/enrollments/sso-made-1?created=1"),
		chromedp.WaitVisible(chromedp.ID("doc-id")))
	if _, err := api.GetEnrollment(bg, "sso-made-1"); err != nil {
		t.Fatalf("the admin's enrollment through the API: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var actor string
		for ev, err := range api.AllAuditEvents(bg, client.AuditQuery{Action: "enrollment."}) {
			if err != nil {
				t.Fatal(err)
			}
			if ev.Resource == "enrollment/sso-made-1" {
				actor = ev.Actor
			}
		}
		if actor == "user:ada@example.com" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the trail names %q for the console's write, want user:ada@example.com", actor)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A viewer sees, has no write button, and a POST is refused.
	ssoSignIn(t, ctx, s, "vera")
	do(t, ctx, "viewer signed in", waitFor("/console"), chromedp.WaitVisible(chromedp.ID("who")))
	if who := get(t, ctx, "viewer's who", chromedp.Text(chromedp.ID("who"))); who != "user:vera@example.com" {
		t.Fatalf("viewer signed in as %q", who)
	}
	do(t, ctx, "viewer's list", chromedp.Navigate(url(s, "/console/enrollments")), chromedp.WaitVisible(chromedp.ID("list")))
	if n := get(t, ctx, "create forms", chromedp.Evaluate[int](`document.querySelectorAll('#create').length`)); n != 0 {
		t.Fatal("the viewer sees the create form")
	}
	do(t, ctx, "viewer's enrollment", chromedp.Navigate(url(s, "/console/enrollments/sso-made-1")), chromedp.WaitVisible(chromedp.ID("doc-id")))
	if n := get(t, ctx, "write buttons", chromedp.Evaluate[int](`document.querySelectorAll('#reveal, #disable, #delete, #save').length`)); n != 0 {
		t.Fatal("the viewer sees write buttons")
	}
	if st := postStatus(t, ctx, "/console/enrollments", map[string]string{"id": "viewer-made"}); st != 403 {
		t.Fatalf("viewer's POST: %d, want 403", st)
	}
	if _, err := api.GetEnrollment(bg, "viewer-made"); err == nil {
		t.Fatal("the viewer's POST created an enrollment")
	}

	// A user whose groups map to no role gets no session.
	ssoSignIn(t, ctx, s, "nora")
	do(t, ctx, "refused sign-in", waitFor("/console/sso/callback"), chromedp.WaitReady(chromedp.CSS("body")))
	if n := get(t, ctx, "who", chromedp.Evaluate[int](`document.querySelectorAll('#who').length`)); n != 0 {
		t.Fatal("a user without a role has a session")
	}
	do(t, ctx, "after the refusal", chromedp.Navigate(url(s, "/console")))
	if loc := get(t, ctx, "location", chromedp.Location()); !strings.Contains(loc, "/console/signin") {
		t.Fatalf("a user without a role reaches %s", loc)
	}
	if !s.LogContains("nora@example.com signed in, but no value of the \\\"groups\\\" claim") && !s.LogContains("nora@example.com signed in, but no value") {
		t.Error("the log does not say why nora was refused")
	}
}
