// Package console_test drives the web console with a real headless
// Chromium against a real `zdps serve`: sign-in through `zdps console
// link`, writes through the UI read back through the service API, a
// read-only policy's session, a forged CSRF token and an expired session.
// It writes the README's screenshots to docs/screenshots.
package console_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
)

// chromium finds Debian's chromium (scripts/test-setup.sh installs it).
// ZDPS_TEST_CHROMIUM=off skips the test on a machine without it.
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("drives a real browser against a real server")
	}
	if os.Getenv("ZDPS_TEST_CHROMIUM") == "off" {
		t.Skip("ZDPS_TEST_CHROMIUM=off")
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed (scripts/test-setup.sh installs it; ZDPS_TEST_CHROMIUM=off skips this test)")
	return ""
}

// browser starts a headless Chromium of its own (fresh profile) and
// returns a tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// The server's certificate is issued by the instance's own CA,
		// which this fresh profile does not trust.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	// The first call starts the browser; it takes no timeout (a timeout
	// would stop the browser with it).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// stepTimeout bounds one step of the browser.
const stepTimeout = time.Minute

// do runs steps, failing t with where the browser was.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("%s: %v (at %s)", what, err, loc)
	}
}

// get runs one action that answers a value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("%s: %v (at %s)", what, err, loc)
	}
	return v
}

// waitFor waits until the page's location contains part (the redirect
// after a POST has landed). A read during the navigation fails; it is
// tried again.
func waitFor(part string) chromedp.Action[chromedp.Void] {
	href := chromedp.Evaluate[string](`location.href`)
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		for {
			if loc, err := href(ctx, t); err == nil && strings.Contains(loc, part) {
				return chromedp.Void{}, nil
			}
			select {
			case <-ctx.Done():
				return chromedp.Void{}, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// link runs `zdps console link` as an operator would and returns the URL.
func link(t *testing.T, s *zdpstest.Server, args ...string) string {
	t.Helper()
	cmd := exec.Command(zdpstest.Binary(t), append([]string{"--data-dir", s.DataDir, "-o", "json"}, append(args, "console", "link")...)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("zdps console link: %v\n%s", err, out)
	}
	var l client.ConsoleLink
	if err := json.Unmarshal(out, &l); err != nil {
		t.Fatalf("zdps console link output %q: %v", out, err)
	}
	return l.URL
}

// signIn opens a sign-in link and presses its button.
func signIn(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	do(t, ctx, "sign in", chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("signin")),
		chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("who")))
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	dir := filepath.Join(zdpstest.RepoRoot(), "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// postStatus submits a form POST from the page with the page's own CSRF
// token, as a hand-made request of a signed-in user would, and returns
// the answer's status.
func postStatus(t *testing.T, ctx context.Context, path string, fields map[string]string) int {
	t.Helper()
	if fields == nil {
		fields = map[string]string{}
	}
	b, _ := json.Marshal(fields)
	js := `(async () => {
	  const f = new URLSearchParams(` + string(b) + `);
	  const tok = document.querySelector('input[name=csrf]');
	  if (tok && !f.has('csrf')) f.set('csrf', tok.value);
	  const r = await fetch(` + jsString(path) + `, {method: 'POST', body: f, redirect: 'manual'});
	  return r.status;
	})()`
	return get(t, ctx, "POST "+path, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
}

func url(s *zdpstest.Server, path string) string { return "https://" + s.Addr() + path }

func jsString(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestConsoleInChromium(t *testing.T) {
	ctx := browser(t)
	s := zdpstest.Start(t)
	api := s.Client()
	bg := context.Background()
	if _, err := api.CreateHub(bg, &enrollment.Hub{Name: "hub-a.example.com", AllocationWeight: 1}); err != nil {
		t.Fatal(err)
	}

	signIn(t, ctx, link(t, s))
	who := get(t, ctx, "who", chromedp.Text(chromedp.ID("who")))
	if who != "policy:"+enrollment.OwnerPolicyName {
		t.Fatalf("signed in as %q", who)
	}

	// A group, created through the UI, read back through the API.
	do(t, ctx, "create group",
		chromedp.Navigate(url(s, "/console/groups")),
		chromedp.WaitVisible(chromedp.ID("create")),
		chromedp.SetValue(chromedp.CSS(`#create input[name=id]`), "line-7"),
		chromedp.SetValue(chromedp.CSS(`#create input[name=iotHubs]`), "hub-a.example.com"),
		chromedp.Click(chromedp.ID("create-submit")),
		waitFor("/console/groups/line-7?created=1"),
		chromedp.WaitVisible(chromedp.ID("doc-id")))
	g, err := api.GetGroup(bg, "line-7")
	if err != nil || g.Attestation == nil || g.Attestation.Type != enrollment.AttestationSymmetricKey || len(g.IoTHubs) != 1 {
		t.Fatalf("group through the API: %+v, %v", g, err)
	}

	// An enrollment likewise, then edited from its page.
	do(t, ctx, "create enrollment",
		chromedp.Navigate(url(s, "/console/enrollments")),
		chromedp.WaitVisible(chromedp.ID("create")),
		chromedp.SetValue(chromedp.CSS(`#create input[name=id]`), "sensor-0042"),
		chromedp.SetValue(chromedp.CSS(`#create input[name=deviceId]`), "sensor-0042"),
		chromedp.SetValue(chromedp.CSS(`#create select[name=allocationPolicy]`), "hashed"),
		chromedp.SetValue(chromedp.CSS(`#create textarea[name=initialTwin]`), `{"tags":{"site":"berlin","line":"7"}}`),
		chromedp.Click(chromedp.ID("create-submit")),
		waitFor("/console/enrollments/sensor-0042?created=1"),
		chromedp.WaitVisible(chromedp.ID("doc-id")))
	do(t, ctx, "edit enrollment",
		chromedp.SetValue(chromedp.CSS(`#edit input[name=iotHubHostName]`), "hub-a.example.com"),
		chromedp.Click(chromedp.ID("save")),
		waitFor("?saved=1"),
		chromedp.WaitVisible(chromedp.ID("doc-id")))
	en, err := api.GetEnrollment(bg, "sensor-0042")
	if err != nil || en.IoTHubHostName != "hub-a.example.com" || en.AllocationPolicy != "hashed" || en.InitialTwin == nil {
		t.Fatalf("enrollment through the API: %+v, %v", en, err)
	}
	// The page shows no key; a device registers with the key the API
	// gives, so there is a registration record for the dashboard.
	page := get(t, ctx, "enrollment page", chromedp.OuterHTML(chromedp.CSS("html")))
	keys, err := api.EnrollmentKeys(bg, "sensor-0042")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page, keys.SymmetricKey.PrimaryKey) {
		t.Fatal("the enrollment page shows its key")
	}
	devKey, _ := base64.StdEncoding.DecodeString(keys.SymmetricKey.PrimaryKey)
	if res, err := device.Register(bg, device.Config{Endpoint: s.Addr(), IDScope: s.IDScope(), RegistrationID: "sensor-0042",
		SymmetricKey: devKey, GenerateKey: true, RootCAs: s.RootCAs(), MaxWait: time.Minute}); err != nil || res.AssignedHub != "hub-a.example.com" {
		t.Fatalf("register: %+v, %v", res, err)
	}
	// Devices of the group, and one with a wrong key, for the dashboard.
	gk, err := api.GroupKeys(bg, "line-7")
	if err != nil {
		t.Fatal(err)
	}
	groupKey, _ := base64.StdEncoding.DecodeString(gk.SymmetricKey.PrimaryKey)
	for i := range 8 {
		if _, err := device.Register(bg, device.Config{Endpoint: s.Addr(), IDScope: s.IDScope(), RegistrationID: fmt.Sprintf("line-7-dev-%02d", i),
			GroupKey: groupKey, GenerateKey: true, RootCAs: s.RootCAs(), MaxWait: time.Minute}); err != nil {
			t.Fatalf("register a group device: %v", err)
		}
	}
	if _, err := device.Register(bg, device.Config{Endpoint: s.Addr(), IDScope: s.IDScope(), RegistrationID: "sensor-0042",
		SymmetricKey: []byte("not the device's key"), RootCAs: s.RootCAs(), MaxWait: time.Minute}); err == nil {
		t.Fatal("a wrong key registered")
	}
	do(t, ctx, "reload enrollment", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("doc-id")))
	screenshot(t, ctx, "enrollment.png")

	// Reveal (htmx swaps the keys in without a reload) is an audit event.
	do(t, ctx, "reveal keys", chromedp.Click(chromedp.ID("reveal")), chromedp.WaitVisible(chromedp.ID("primary-key")))
	if shown := get(t, ctx, "revealed key", chromedp.Text(chromedp.ID("primary-key"))); shown != keys.SymmetricKey.PrimaryKey {
		t.Fatalf("revealed %q", shown)
	}
	for i := 0; ; i++ {
		do(t, ctx, "audit of the reveal", chromedp.Navigate(url(s, "/console/audit?action=enrollment.read-keys")), chromedp.WaitVisible(chromedp.ID("list")))
		if strings.Contains(get(t, ctx, "audit rows", chromedp.Text(chromedp.ID("list"))), "policy:"+enrollment.OwnerPolicyName) {
			break
		}
		if i == 100 {
			t.Fatal("the reveal is not in the audit trail")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A forged CSRF token is refused, and nothing is written.
	do(t, ctx, "forged CSRF",
		chromedp.Navigate(url(s, "/console/enrollments")),
		chromedp.WaitVisible(chromedp.ID("create")),
		chromedp.SetValue(chromedp.CSS(`#create input[name=id]`), "forged-1"),
		chromedp.SetValue(chromedp.CSS(`#create input[name=csrf]`), "forged-token"),
		chromedp.Click(chromedp.ID("create-submit")),
		waitFor("/console/enrollments"),
		chromedp.WaitVisible(chromedp.ID("error")))
	msg := get(t, ctx, "forged CSRF message", chromedp.Text(chromedp.ID("error")))
	if !strings.Contains(msg, "CSRF") {
		t.Fatalf("forged CSRF answer: %q", msg)
	}
	if _, err := api.GetEnrollment(bg, "forged-1"); err == nil {
		t.Fatal("a forged CSRF token created an enrollment")
	}

	do(t, ctx, "dashboard", chromedp.Navigate(url(s, "/console")), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
	// The posture panel fills once its first computation (started by the
	// first view) is done.
	for i := 0; ; i++ {
		do(t, ctx, "dashboard again", chromedp.Navigate(url(s, "/console")), chromedp.WaitVisible(chromedp.CSS("svg.chart")))
		if get(t, ctx, "score", chromedp.Evaluate[int](`document.querySelectorAll('#score').length`)) == 1 {
			break
		}
		if i == 50 {
			t.Fatal("the dashboard shows no posture score")
		}
		time.Sleep(100 * time.Millisecond)
	}
	screenshot(t, ctx, "dashboard.png")
	do(t, ctx, "audit", chromedp.Navigate(url(s, "/console/audit")), chromedp.WaitVisible(chromedp.ID("list")))
	audit := get(t, ctx, "audit text", chromedp.Text(chromedp.ID("list")))
	for _, want := range []string{"group.create", "enrollment.create", "enrollment.update", "registration.assigned"} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit page lacks %s", want)
		}
	}
	screenshot(t, ctx, "audit.png")

	// Allocation explain on the hubs page, through the pipeline.
	do(t, ctx, "explain",
		chromedp.Navigate(url(s, "/console/hubs")),
		chromedp.WaitVisible(chromedp.ID("explain")),
		chromedp.SetValue(chromedp.CSS(`#explain input[name=registrationId]`), "sensor-0042"),
		chromedp.Click(chromedp.ID("explain-submit")),
		chromedp.WaitVisible(chromedp.ID("explanation")))
	if x := get(t, ctx, "explanation", chromedp.Text(chromedp.ID("explanation"))); !strings.Contains(x, "hashed") || !strings.Contains(x, "hub-a.example.com") {
		t.Fatalf("explanation: %q", x)
	}

	// A read-only policy: no write button, and its POST is refused.
	viewerKey := base64.StdEncoding.EncodeToString([]byte("viewer-key-0123456789abcdef01234"))
	if _, err := api.CreatePolicy(bg, &enrollment.SharedAccessPolicy{KeyName: "viewer", PrimaryKey: viewerKey, SecondaryKey: viewerKey,
		Rights: enrollment.RightEnrollmentRead + ", " + enrollment.RightRegistrationStatusRead}); err != nil {
		t.Fatal(err)
	}
	viewerCS := "HostName=" + s.Addr() + ";SharedAccessKeyName=viewer;SharedAccessKey=" + viewerKey
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	signIn(t, ctx, link(t, s, "--connection-string", viewerCS))
	who = get(t, ctx, "viewer's who", chromedp.Text(chromedp.ID("who")))
	if who != "policy:viewer" {
		t.Fatalf("viewer signed in as %q", who)
	}
	do(t, ctx, "viewer's list", chromedp.Navigate(url(s, "/console/enrollments")), chromedp.WaitVisible(chromedp.ID("list")))
	if n := get(t, ctx, "create forms", chromedp.Evaluate[int](`document.querySelectorAll('#create').length`)); n != 0 {
		t.Fatal("the viewer sees the create form")
	}
	do(t, ctx, "viewer's enrollment", chromedp.Navigate(url(s, "/console/enrollments/sensor-0042")), chromedp.WaitVisible(chromedp.ID("doc-id")))
	if n := get(t, ctx, "write buttons", chromedp.Evaluate[int](`document.querySelectorAll('#reveal, #disable, #delete, #save').length`)); n != 0 {
		t.Fatal("the viewer sees write buttons")
	}
	if st := postStatus(t, ctx, "/console/enrollments", map[string]string{"id": "viewer-made"}); st != 403 {
		t.Fatalf("viewer's POST: %d, want 403", st)
	}
	if st := postStatus(t, ctx, "/console/enrollments/sensor-0042/keys", nil); st != 403 {
		t.Fatalf("viewer's reveal: %d, want 403", st)
	}
	if _, err := api.GetEnrollment(bg, "viewer-made"); err == nil {
		t.Fatal("the viewer's POST created an enrollment")
	}

	// Sign out ends the session.
	do(t, ctx, "sign out", chromedp.Click(chromedp.ID("logout")), waitFor("/console/signin"))
	do(t, ctx, "after sign out", chromedp.Navigate(url(s, "/console")))
	loc := get(t, ctx, "location", chromedp.Location())
	if !strings.Contains(loc, "/console/signin") {
		t.Fatalf("after sign-out /console is at %s", loc)
	}
}

func TestConsoleSessionExpires(t *testing.T) {
	ctx := browser(t)
	s := zdpstest.Start(t, "--console-idle-timeout", "2s")
	signIn(t, ctx, link(t, s))
	time.Sleep(3 * time.Second)
	do(t, ctx, "after idle", chromedp.Navigate(url(s, "/console/enrollments")))
	loc := get(t, ctx, "location", chromedp.Location())
	if !strings.Contains(loc, "/console/signin?expired=1") {
		t.Fatalf("an idle session still reaches %s", loc)
	}
}
