package robustness

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/api"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// authzCredential is one kind of credential a caller may present.
type authzCredential struct {
	name string
	// header is the Authorization header; "" sends none.
	header string
	// rights the credential carries once authenticated; nil means it must
	// be refused with 401 on every authenticated route.
	rights []string
}

// TestAuthorizationMatrix calls every route of the service API's route
// table (api.Routes) with every kind of credential, against a real zdps
// serve: a route answers 401 to every credential that does not
// authenticate, 403 to a policy without the route's right, and neither to
// one with it; public routes answer alike whatever is presented; nothing
// answers 5xx. IDs in paths name nothing that exists and bodies are
// absent, so no call changes the store.
func TestAuthorizationMatrix(t *testing.T) {
	srv := zdpstest.Start(t)
	creds := authzCredentials(t, srv)
	authzMatrix(t, srv, creds)
	// The store is as it was: no call of the matrix wrote.
	pols, err := srv.Client().ListPolicies(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(pols) != 1+len(enrollment.AllRights) {
		t.Errorf("%d policies after the matrix, want %d", len(pols), 1+len(enrollment.AllRights))
	}
}

// authzMatrix calls every route of api.Routes with every credential and
// checks each answer against the route's right and the credential's.
func authzMatrix(t *testing.T, srv *zdpstest.Server, creds []authzCredential) {
	t.Helper()
	routes := api.Routes()
	if len(routes) < 30 || !slices.ContainsFunc(routes, func(r api.Route) bool { return r.Pattern == "/backup" }) {
		t.Fatalf("route table of %d routes lacks routes: %v", len(routes), routes)
	}
	hc := srv.HTTPClient()
	ids := regexp.MustCompile(`\{[^}]+\}`)
	refused, forbidden, admitted := 0, 0, 0
	for _, rt := range routes {
		path := ids.ReplaceAllString(rt.Pattern, "zdps-authz-nosuch")
		for _, cr := range creds {
			status, code := authzCall(t, hc, rt.Method, "https://"+srv.Addr()+path+"?api-version="+client.DefaultAPIVersion, cr.header)
			if status >= 500 {
				t.Errorf("%s %s with %s: %d", rt.Method, rt.Pattern, cr.name, status)
				continue
			}
			switch {
			case rt.Right == "":
				// Public: authentication plays no part.
				if status == http.StatusUnauthorized || status == http.StatusForbidden || code == 404000 {
					t.Errorf("public %s %s with %s: %d (code %d)", rt.Method, rt.Pattern, cr.name, status, code)
				}
				admitted++
			case cr.rights == nil:
				if status != http.StatusUnauthorized || code != 401002 {
					t.Errorf("%s %s with %s: %d (code %d), want 401 (401002)", rt.Method, rt.Pattern, cr.name, status, code)
				}
				refused++
			case !slices.Contains(cr.rights, rt.Right):
				if status != http.StatusForbidden || code != 403002 {
					t.Errorf("%s %s (needs %s) with %s: %d (code %d), want 403 (403002)", rt.Method, rt.Pattern, rt.Right, cr.name, status, code)
				}
				forbidden++
			default:
				if status == http.StatusUnauthorized || status == http.StatusForbidden || code == 404000 {
					t.Errorf("%s %s (needs %s) with %s: %d (code %d), want it admitted", rt.Method, rt.Pattern, rt.Right, cr.name, status, code)
				}
				admitted++
			}
		}
	}
	t.Logf("%d routes × %d kinds of credential = %d calls: %d refused (401), %d forbidden (403), %d admitted",
		len(routes), len(creds), len(routes)*len(creds), refused, forbidden, admitted)
}

// authzCall makes one request and returns the status and the DPS
// errorCode (0 when the answer is not a DPS error).
func authzCall(t *testing.T, hc *http.Client, method, u, auth string) (int, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, u, err)
	}
	var e struct {
		ErrorCode int `json:"errorCode"`
	}
	if resp.StatusCode >= 400 {
		_ = json.Unmarshal(body, &e)
	}
	return resp.StatusCode, e.ErrorCode
}

// authzCredentials builds every kind of credential: the owner's keys in the
// forms the Azure SDKs sign, tokens refused for each reason, one policy per
// right, and a device's own key.
func authzCredentials(t *testing.T, srv *zdpstest.Server) []authzCredential {
	t.Helper()
	ctx := t.Context()
	c := srv.Client()
	cs, err := client.ParseConnectionString(srv.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	owner, err := c.PolicyKeys(ctx, cs.SharedAccessKeyName)
	if err != nil {
		t.Fatal(err)
	}
	key := func(b64 string) []byte {
		k, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	primary, secondary := key(owner.PrimaryKey), key(owner.SecondaryKey)
	host := cs.HostName
	bare, port, _ := net.SplitHostPort(host)
	soon := time.Now().Add(time.Hour)
	tok := func(k []byte, sr, skn string, exp time.Time) string { return sas.Build(k, sr, skn, exp) }
	forged := make([]byte, 32)
	_, _ = rand.Read(forged)

	creds := []authzCredential{
		{"owner primary key", tok(primary, host, owner.KeyName, soon), enrollment.AllRights},
		{"owner secondary key", tok(secondary, host, owner.KeyName, soon), enrollment.AllRights},
		{"owner, host without port", tok(primary, bare, owner.KeyName, soon), enrollment.AllRights},
		{"owner, host in upper case", tok(primary, strings.ToUpper(bare)+":"+port, owner.KeyName, soon), enrollment.AllRights},
		{"owner, sr percent-encoded", tok(primary, url.QueryEscape(host), owner.KeyName, soon), enrollment.AllRights},
		{"owner, expired within the clock skew", tok(primary, host, owner.KeyName, time.Now().Add(-time.Minute)), enrollment.AllRights},

		{"no Authorization", "", nil},
		{"not a SAS", "Bearer abc", nil},
		{"malformed SAS", "SharedAccessSignature sr=x&sig=%%%&se=1", nil},
		{"expired", tok(primary, host, owner.KeyName, time.Now().Add(-time.Hour)), nil},
		{"forged signature", tok(forged, host, owner.KeyName, soon), nil},
		{"unknown policy", tok(primary, host, "nobody", soon), nil},
		{"no skn", tok(primary, host, "", soon), nil},
		{"other host", tok(primary, "evil.example.com", owner.KeyName, soon), nil},
		{"other port", tok(primary, bare+":1", owner.KeyName, soon), nil},
		{"device resource", tok(primary, srv.IDScope()+"/registrations/dev-1", owner.KeyName, soon), nil},
	}
	for _, right := range enrollment.AllRights {
		name := "only-" + strings.ToLower(right)
		if _, err := c.PutPolicy(ctx, &enrollment.SharedAccessPolicy{KeyName: name, Rights: right}, ""); err != nil {
			t.Fatal(err)
		}
		p, err := c.PolicyKeys(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		creds = append(creds, authzCredential{"policy with only " + right, tok(key(p.PrimaryKey), host, name, soon), []string{right}})
	}
	// A device's key signs device tokens, never service ones.
	if _, err := c.PutEnrollment(ctx, restoreEnrollment("authz-device"), ""); err != nil {
		t.Fatal(err)
	}
	m, err := c.EnrollmentKeys(ctx, "authz-device")
	if err != nil {
		t.Fatal(err)
	}
	dk := key(m.SymmetricKey.PrimaryKey)
	creds = append(creds,
		authzCredential{"device key, device token", tok(dk, srv.IDScope()+"/registrations/authz-device", "registration", soon), nil},
		authzCredential{"device key, service token", tok(dk, host, owner.KeyName, soon), nil},
	)
	return creds
}
