package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/client/clienttest"
	"github.com/zdps/zdps/pkg/enrollment"
)

func newClient(t *testing.T) (*client.Client, *clienttest.Server) {
	t.Helper()
	srv := clienttest.NewServer(t)
	c, err := client.New(client.Config{ConnectionString: srv.ConnectionString(), RootCAs: srv.CertPool()})
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

func symmetric(id string) *enrollment.IndividualEnrollment {
	return &enrollment.IndividualEnrollment{RegistrationID: id, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey}}}
}

func TestEnrollmentLifecycle(t *testing.T) {
	ctx := t.Context()
	c, _ := newClient(t)

	created, err := c.PutEnrollment(ctx, symmetric("dev:1.a_b-c"), "")
	if err != nil {
		t.Fatal(err)
	}
	if created.ETag == "" {
		t.Fatal("created enrollment has no etag")
	}
	got, err := c.GetEnrollment(ctx, "DEV:1.A_B-C")
	if err != nil {
		t.Fatal(err)
	}
	if got.RegistrationID != "dev:1.a_b-c" || got.ETag != created.ETag {
		t.Fatalf("got %+v", got)
	}
	if k := got.Attestation.SymmetricKey; k != nil && k.PrimaryKey != "" {
		t.Fatal("GET returned keys")
	}
	keys, err := c.EnrollmentKeys(ctx, "dev:1.a_b-c")
	if err != nil {
		t.Fatal(err)
	}
	if keys.SymmetricKey == nil || keys.SymmetricKey.PrimaryKey == "" || keys.SymmetricKey.SecondaryKey == "" {
		t.Fatalf("keys not generated: %+v", keys)
	}

	tests := []struct {
		name string
		call func() error
		want error
	}{
		{name: "put with stale etag", call: func() error { _, err := c.PutEnrollment(ctx, symmetric("dev:1.a_b-c"), `"stale"`); return err }, want: client.ErrPreconditionFailed},
		{name: "delete with stale etag", call: func() error { return c.DeleteEnrollment(ctx, "dev:1.a_b-c", `"stale"`) }, want: client.ErrPreconditionFailed},
		{name: "get missing", call: func() error { _, err := c.GetEnrollment(ctx, "missing"); return err }, want: client.ErrNotFound},
		{name: "keys of missing", call: func() error { _, err := c.EnrollmentKeys(ctx, "missing"); return err }, want: client.ErrNotFound},
		{name: "delete with current etag", call: func() error { return c.DeleteEnrollment(ctx, "dev:1.a_b-c", created.ETag) }, want: nil},
		{name: "delete again", call: func() error { return c.DeleteEnrollment(ctx, "dev:1.a_b-c", "") }, want: client.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				var apiErr *client.APIError
				if !errors.As(err, &apiErr) || apiErr.ErrorCode < 100000 || apiErr.TrackingID == "" {
					t.Fatalf("want an APIError with a DPS code and tracking id, got %#v", err)
				}
			}
		})
	}
}

func TestQueryPagesThroughEverything(t *testing.T) {
	ctx := t.Context()
	c, _ := newClient(t)
	const n = 23
	items := make([]*enrollment.IndividualEnrollment, n)
	for i := range items {
		items[i] = symmetric(fmt.Sprintf("dev-%03d", i))
	}
	res, err := c.BulkEnrollments(ctx, enrollment.BulkCreate, items)
	if err != nil || !res.IsSuccessful {
		t.Fatalf("bulk: %+v, %v", res, err)
	}
	for _, size := range []int{0, 1, 5, 23, 100} {
		t.Run(fmt.Sprint("page size ", size), func(t *testing.T) {
			var ids []string
			for e, err := range c.Enrollments(ctx, size) {
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, e.RegistrationID)
			}
			if len(ids) != n || ids[0] != "dev-000" || ids[n-1] != "dev-022" {
				t.Fatalf("got %d ids: %v", len(ids), ids)
			}
		})
	}
	first, next, err := c.QueryEnrollments(ctx, 20, "")
	if err != nil || len(first) != 20 || next == "" {
		t.Fatalf("first page: %d items, next %q, %v", len(first), next, err)
	}
	last, next, err := c.QueryEnrollments(ctx, 20, next)
	if err != nil || len(last) != 3 || next != "" {
		t.Fatalf("last page: %d items, next %q, %v", len(last), next, err)
	}
}

func TestBulkCreateReportsExistingItems(t *testing.T) {
	ctx := t.Context()
	c, _ := newClient(t)
	if _, err := c.PutEnrollment(ctx, symmetric("a"), ""); err != nil {
		t.Fatal(err)
	}
	res, err := c.BulkEnrollments(ctx, enrollment.BulkCreate, []*enrollment.IndividualEnrollment{symmetric("a"), symmetric("b")})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsSuccessful || len(res.Errors) != 1 || res.Errors[0].RegistrationID != "a" || res.Errors[0].ErrorCode/1000 != 409 {
		t.Fatalf("result %+v", res)
	}
}

func TestIDsArePercentEncoded(t *testing.T) {
	c, srv := newClient(t)
	var raw atomic.Value
	srv.Intercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		raw.Store(r.URL.EscapedPath())
		next.ServeHTTP(w, r)
	})
	_, err := c.GetEnrollment(t.Context(), "a/b?c#d e")
	if !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	if got, want := raw.Load(), "/enrollments/a%2Fb%3Fc%23d%20e"; got != want {
		t.Fatalf("path %q, want %q", got, want)
	}
}

func TestGroupsHubsPoliciesSettingsRegistrations(t *testing.T) {
	ctx := t.Context()
	c, srv := newClient(t)

	g, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{EnrollmentGroupID: "line-1", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if m, err := c.GroupKeys(ctx, g.EnrollmentGroupID); err != nil || m.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("group keys %+v, %v", m, err)
	}
	res, err := c.BulkGroups(ctx, enrollment.BulkCreate, []*enrollment.EnrollmentGroup{
		{EnrollmentGroupID: "line-1", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey}}},
		{EnrollmentGroupID: "line-2", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey}}},
	})
	if err != nil || res.IsSuccessful || len(res.Errors) != 1 || res.Errors[0].EnrollmentGroupID != "line-1" {
		t.Fatalf("bulk groups: %+v %v", res, err)
	}
	if res, err = c.BulkGroups(ctx, enrollment.BulkDelete, []*enrollment.EnrollmentGroup{{EnrollmentGroupID: "line-2"}}); err != nil || !res.IsSuccessful {
		t.Fatalf("bulk delete groups: %+v %v", res, err)
	}
	var groups int
	for _, err := range c.Groups(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		groups++
	}
	if groups != 1 {
		t.Fatalf("%d groups", groups)
	}

	h, err := c.PutHub(ctx, &enrollment.Hub{Name: "hub1.example.com", AllocationWeight: 10, Region: "eu"}, "")
	if err != nil {
		t.Fatal(err)
	}
	h.AllocationWeight = 20
	if _, err := c.PutHub(ctx, h, `"other"`); !errors.Is(err, client.ErrPreconditionFailed) {
		t.Fatalf("stale hub update: %v", err)
	}
	if h, err = c.PutHub(ctx, h, h.ETag); err != nil || h.AllocationWeight != 20 {
		t.Fatalf("hub update: %+v %v", h, err)
	}
	hubs, next, err := c.ListHubs(ctx, 0, "")
	if err != nil || len(hubs) != 1 || next != "" {
		t.Fatalf("hubs %v %q %v", hubs, next, err)
	}
	if err := c.DeleteHub(ctx, "hub1.example.com", ""); err != nil {
		t.Fatal(err)
	}

	p, err := c.PutPolicy(ctx, &enrollment.SharedAccessPolicy{KeyName: "reader", Rights: "EnrollmentRead"}, "")
	if err != nil || p.PrimaryKey != "" {
		t.Fatalf("policy %+v, %v", p, err)
	}
	withKeys, err := c.PolicyKeys(ctx, "reader")
	if err != nil || withKeys.PrimaryKey == "" {
		t.Fatalf("policy keys %+v %v", withKeys, err)
	}
	ps, err := c.ListPolicies(ctx)
	if err != nil || len(ps) != 2 {
		t.Fatalf("policies %v %v", ps, err)
	}
	// The new policy's key signs valid requests.
	reader, err := client.New(client.Config{
		ConnectionString: client.ConnectionString{HostName: c.HostName(), SharedAccessKeyName: "reader", SharedAccessKey: withKeys.PrimaryKey}.String(),
		RootCAs:          srv.CertPool(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.GetGroup(ctx, "line-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeletePolicy(ctx, "reader", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.GetGroup(ctx, "line-1"); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("deleted policy still works: %v", err)
	}

	st, err := c.GetSettings(ctx)
	if err != nil || st.IDScope == "" {
		t.Fatalf("settings %+v %v", st, err)
	}
	st.DefaultAllocationPolicy = enrollment.PolicyGeoLatency
	if st, err = c.PutSettings(ctx, st, st.ETag); err != nil || st.DefaultAllocationPolicy != enrollment.PolicyGeoLatency {
		t.Fatalf("settings update %+v %v", st, err)
	}

	srv.AddRegistration(enrollment.Registration{RegistrationID: "line-1-dev1", EnrollmentGroupID: "line-1", Status: enrollment.RegistrationAssigned, AssignedHub: "hub1"})
	srv.AddRegistration(enrollment.Registration{RegistrationID: "other", Status: enrollment.RegistrationAssigned})
	r, err := c.GetRegistration(ctx, "line-1-dev1")
	if err != nil || r.AssignedHub != "hub1" {
		t.Fatalf("registration %+v %v", r, err)
	}
	for _, tt := range []struct {
		group string
		want  int
	}{{"", 2}, {"line-1", 1}, {"none", 0}} {
		t.Run("registrations of "+tt.group, func(t *testing.T) {
			n := 0
			for _, err := range c.Registrations(ctx, tt.group, 1) {
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			if n != tt.want {
				t.Fatalf("%d records, want %d", n, tt.want)
			}
		})
	}
	if err := c.DeleteRegistration(ctx, "line-1-dev1", ""); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteGroup(ctx, "line-1", ""); err != nil {
		t.Fatal(err)
	}
}

func TestAuthAndTLSFailures(t *testing.T) {
	srv := clienttest.NewServer(t)
	cs, _ := client.ParseConnectionString(srv.ConnectionString())
	wrongKey := cs
	wrongKey.SharedAccessKey = "d3Jvbmcta2V5"
	wrongPolicy := cs
	wrongPolicy.SharedAccessKeyName = "nobody"
	tests := []struct {
		name      string
		cfg       client.Config
		want      error
		transient bool
	}{
		{name: "wrong key", cfg: client.Config{ConnectionString: wrongKey.String(), RootCAs: srv.CertPool()}, want: client.ErrUnauthorized},
		{name: "wrong policy", cfg: client.Config{ConnectionString: wrongPolicy.String(), RootCAs: srv.CertPool()}, want: client.ErrUnauthorized},
		{name: "unsupported api version", cfg: client.Config{ConnectionString: cs.String(), RootCAs: srv.CertPool(), APIVersion: "1999-01-01"}},
		{name: "untrusted server certificate", cfg: client.Config{ConnectionString: cs.String()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := client.New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetSettings(t.Context())
			if err == nil {
				t.Fatal("want an error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if client.IsTransient(err) != tt.transient {
				t.Fatalf("IsTransient(%v) = %v", err, !tt.transient)
			}
			if strings.Contains(err.Error(), cs.SharedAccessKey) || strings.Contains(err.Error(), "sig=") {
				t.Fatalf("error leaks a secret: %v", err)
			}
		})
	}
}

func TestIsTransient(t *testing.T) {
	c, srv := newClient(t)
	var mode atomic.Int32
	srv.Intercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		switch mode.Load() {
		case 1:
			clienttest.Fail(w, http.StatusServiceUnavailable)
		case 2:
			clienttest.Fail(w, http.StatusTooManyRequests)
		case 3:
			clienttest.DropConnection(w)
		case 4:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html><body>\n<h1>Bad gateway</h1>\n</body></html>")
		default:
			next.ServeHTTP(w, r)
		}
	})
	tests := []struct {
		name       string
		mode       int32
		transient  bool
		retryAfter time.Duration
	}{
		{name: "404", mode: 0, transient: false},
		{name: "503", mode: 1, transient: true},
		{name: "429", mode: 2, transient: true, retryAfter: time.Second},
		{name: "connection dropped", mode: 3, transient: true},
		{name: "html 502 from a proxy", mode: 4, transient: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mode.Store(tt.mode)
			_, err := c.GetEnrollment(t.Context(), "missing")
			if err == nil {
				t.Fatal("want an error")
			}
			if got := client.IsTransient(err); got != tt.transient {
				t.Fatalf("IsTransient(%v) = %v", err, got)
			}
			if got := client.RetryAfter(err); got != tt.retryAfter {
				t.Fatalf("RetryAfter = %s, want %s", got, tt.retryAfter)
			}
			if strings.ContainsAny(err.Error(), "\n<{") {
				t.Fatalf("error is not one clean line: %q", err)
			}
		})
	}

	t.Run("not api errors", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, cancelled := c.GetEnrollment(ctx, "x")
		refused := &url.Error{Op: "Get", URL: "https://x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}
		for _, tc := range []struct {
			err  error
			want bool
		}{
			{nil, false},
			{errors.New("plain"), false},
			{cancelled, false},
			{refused, true},
			{fmt.Errorf("wrapped: %w", refused), true},
		} {
			if got := client.IsTransient(tc.err); got != tc.want {
				t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		}
	})
}

func TestHealth(t *testing.T) {
	c, _ := newClient(t)
	if err := c.Health(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestCreateOnly(t *testing.T) {
	ctx := t.Context()
	c, _ := newClient(t)
	if _, err := c.CreateHub(ctx, &enrollment.Hub{Name: "hub.example.com", AllocationWeight: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateHub(ctx, &enrollment.Hub{Name: "HUB.example.com"}); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	if h, err := c.GetHub(ctx, "hub.example.com"); err != nil || h.AllocationWeight != 2 {
		t.Fatalf("hub was replaced: %+v %v", h, err)
	}
	if _, err := c.CreatePolicy(ctx, &enrollment.SharedAccessPolicy{KeyName: "ops", Rights: "EnrollmentRead"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreatePolicy(ctx, &enrollment.SharedAccessPolicy{KeyName: "ops", Rights: "ServiceConfig"}); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
}
