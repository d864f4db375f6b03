package custom

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/pkg/enrollment"
)

var hubs = []*enrollment.Hub{{Name: "hub-a.example.net"}, {Name: "hub-b.example.net"}}

func input(url string) allocation.Input {
	return allocation.Input{
		Policy: enrollment.PolicyCustom,
		Group: &enrollment.EnrollmentGroup{
			EnrollmentGroupID: "g1", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{
				PrimaryKey: "c2VjcmV0LXByaW1hcnkta2V5LTAxMjM0NTY3ODk=", SecondaryKey: "c2VjcmV0LXNlY29uZGFyeS1rZXktMDEyMzQ1Njc4OQ=="}},
				AllocationPolicy:           enrollment.PolicyCustom,
				CustomAllocationDefinition: &enrollment.CustomAllocationDefinition{WebhookURL: url, APIVersion: "2019-03-31"}},
		},
		RegistrationID:  "dev-1",
		AttestationType: enrollment.AttestationSymmetricKey,
		Payload:         json.RawMessage(`{"model":"x1"}`),
		CurrentHub:      "hub-b.example.net",
		CurrentDeviceID: "dev-1",
		EligibleHubs:    hubs,
	}
}

// webhook serves fn on a real 127.0.0.1 listener and counts calls.
func webhook(t *testing.T, fn http.HandlerFunc) (string, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		fn(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/allocate?code=function-key", &n
}

func answer(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

func newPolicy(t *testing.T, cfg Config) *Policy {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 300 * time.Millisecond
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = time.Millisecond
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWebhookOutcomes is the list: success, hub not linked, slow
// beyond the timeout, 500, malformed JSON; each with its documented outcome
// and message.
func TestWebhookOutcomes(t *testing.T) {
	slow := make(chan struct{})
	t.Cleanup(func() { close(slow) })
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		wantHub   string
		wantErr   *WebhookError
		wantCalls int32
	}{
		{"success", answer(`{"iotHubHostName":"HUB-A.example.net","initialTwin":{"tags":{"t":1}},"payload":{"extra":true},"future":1}`), "hub-a.example.net", nil, 1},
		{"hub not linked", answer(`{"iotHubHostName":"elsewhere.example.net"}`), "",
			&WebhookError{Kind: KindNotLinked, Attempts: 1, Hub: "elsewhere.example.net", Linked: []string{"hub-a.example.net", "hub-b.example.net"}}, 1},
		{"slow beyond the timeout", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // so that the server notices the client hanging up
			select {
			case <-slow:
			case <-r.Context().Done():
			}
		}, "", &WebhookError{Kind: KindTimeout, Attempts: 3, Timeout: 300 * time.Millisecond}, 3},
		{"500", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }, "",
			&WebhookError{Kind: KindStatus, Attempts: 3, StatusCode: 500}, 3},
		{"404 is final", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) }, "",
			&WebhookError{Kind: KindStatus, Attempts: 1, StatusCode: 404}, 1},
		{"malformed JSON", answer(`{"iotHubHostName": "hub-a.example.net"`), "",
			&WebhookError{Kind: KindMalformed, Attempts: 1, Detail: "the answer ends early"}, 1},
		{"garbage", answer(`{"iotHubHostName": hub-a}`), "",
			&WebhookError{Kind: KindMalformed, Attempts: 1, Detail: "syntax error at byte offset 20"}, 1},
		{"not an object", answer(`"hub-a.example.net"`), "",
			&WebhookError{Kind: KindMalformed, Attempts: 1, Detail: "the answer is not a JSON object"}, 1},
		{"hub of the wrong type", answer(`{"iotHubHostName": 7}`), "",
			&WebhookError{Kind: KindMalformed, Attempts: 1, Detail: "iotHubHostName must not be a JSON number"}, 1},
		{"no hub", answer(`{"payload":{}}`), "", &WebhookError{Kind: KindNoHub, Attempts: 1}, 1},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://169.254.169.254/", http.StatusFound)
		}, "", &WebhookError{Kind: KindStatus, Attempts: 1, StatusCode: 302}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, calls := webhook(t, tc.handler)
			d, err := newPolicy(t, Config{}).Allocate(context.Background(), input(url))
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if d.Hub != tc.wantHub || string(d.Payload) != `{"extra":true}` || string(d.InitialTwin) != `{"tags":{"t":1}}` {
					t.Fatalf("decision %+v", d)
				}
				return
			}
			if !errors.Is(err, allocation.ErrPolicyFailed) || !allocation.IsFailure(err) {
				t.Fatalf("err = %v, want an allocation failure", err)
			}
			var we *WebhookError
			if !errors.As(err, &we) {
				t.Fatalf("err = %T %v, want *WebhookError", err, err)
			}
			if we.Error() != tc.wantErr.Error() || we.Kind != tc.wantErr.Kind {
				t.Fatalf("error\n got %q\nwant %q", we.Error(), tc.wantErr.Error())
			}
			if got := calls.Load(); got != tc.wantCalls {
				t.Fatalf("%d calls, want %d", got, tc.wantCalls)
			}
			t.Logf("registration error message: %s", we.Error())
		})
	}
}

func TestRequestBodyAndSignature(t *testing.T) {
	secret := []byte("webhook-secret")
	now := time.Unix(1_700_000_000, 0)
	var got map[string]any
	var verr error
	url, _ := webhook(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		verr = Verify(secret, r.Header, b, now.Add(time.Second), time.Minute)
		_ = json.Unmarshal(b, &got)
		answer(`{"iotHubHostName":"hub-b.example.net"}`)(w, r)
	})
	p := newPolicy(t, Config{Secret: secret, Now: func() time.Time { return now }})
	if _, err := p.Allocate(context.Background(), input(url)); err != nil {
		t.Fatal(err)
	}
	if verr != nil {
		t.Fatalf("signature: %v", verr)
	}
	b, _ := json.Marshal(got)
	s := string(b)
	for _, want := range []string{
		`"enrollmentGroup":{`, `"enrollmentGroupId":"g1"`,
		`"deviceRuntimeContext":{"currentDeviceId":"dev-1","currentIotHubHostName":"hub-b.example.net","payload":{"model":"x1"},"registrationId":"dev-1","symmetricKey":{}}`,
		`"linkedHubs":["hub-a.example.net","hub-b.example.net"]`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("request lacks %s:\n%s", want, s)
		}
	}
	if strings.Contains(s, "c2VjcmV0") {
		t.Errorf("request carries the enrollment's keys:\n%s", s)
	}
	t.Run("tampered body refused", func(t *testing.T) {
		h := http.Header{}
		h.Set(HeaderTimestamp, "1700000000")
		h.Set(HeaderSignature, Sign(secret, 1_700_000_000, []byte(`{"a":1}`)))
		if err := Verify(secret, h, []byte(`{"a":2}`), now, time.Minute); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("err = %v", err)
		}
		if err := Verify(secret, h, []byte(`{"a":1}`), now.Add(time.Hour), time.Minute); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("stale: err = %v", err)
		}
	})
}

// TestRefusedAddresses: the dial-time check refuses link-local and
// metadata addresses however the name resolves, unless allowed.
func TestRefusedAddresses(t *testing.T) {
	p := newPolicy(t, Config{})
	for _, a := range []string{"169.254.169.254", "fe80::1", "100.100.100.200", "fd00:ec2::254", "168.63.129.16", "0.0.0.0", "::ffff:169.254.169.254", "224.0.0.1"} {
		t.Run(a, func(t *testing.T) {
			if err := p.checkAddr(netip.MustParseAddr(a)); !errors.Is(err, ErrRefusedAddress) {
				t.Fatalf("err = %v, want refused", err)
			}
		})
	}
	for _, a := range []string{"127.0.0.1", "::1", "10.1.2.3", "192.168.1.1", "8.8.8.8"} {
		t.Run(a, func(t *testing.T) {
			if err := p.checkAddr(netip.MustParseAddr(a)); err != nil {
				t.Fatalf("err = %v, want allowed", err)
			}
		})
	}
	t.Run("end to end: metadata URL refused at connect time", func(t *testing.T) {
		_, err := p.Allocate(context.Background(), input("http://169.254.169.254/latest/meta-data/"))
		var we *WebhookError
		if !errors.As(err, &we) || we.Kind != KindBlocked {
			t.Fatalf("err = %v, want KindBlocked", err)
		}
	})
	t.Run("a name resolving to loopback is checked on the resolved address", func(t *testing.T) {
		// Treat loopback as refused, to prove the hook sees the dialled
		// IP behind a host name.
		lp := newPolicy(t, Config{})
		lp.refused = append([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, lp.refused...)
		url, calls := webhook(t, answer(`{"iotHubHostName":"hub-a.example.net"}`))
		url = strings.Replace(url, "127.0.0.1", "localhost", 1)
		_, err := lp.Allocate(context.Background(), input(url))
		var we *WebhookError
		if !errors.As(err, &we) || we.Kind != KindBlocked || calls.Load() != 0 {
			t.Fatalf("err = %v (calls %d), want KindBlocked before any request", err, calls.Load())
		}
		allowed := newPolicy(t, Config{AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
		allowed.refused = lp.refused
		if _, err := allowed.Allocate(context.Background(), input(url)); err != nil {
			t.Fatalf("allowed network: %v", err)
		}
	})
}

// TestCheckURL: the write-time check refuses literal refused addresses and
// metadata host names, honours AllowNetworks, and leaves other names to the
// connect-time check.
func TestCheckURL(t *testing.T) {
	p := newPolicy(t, Config{})
	allowed := newPolicy(t, Config{AllowNetworks: []netip.Prefix{netip.MustParsePrefix("169.254.10.0/24")}})
	tests := []struct {
		name, url string
		p         *Policy
		refused   bool
	}{
		{"metadata address", "http://169.254.169.254/latest", p, true},
		{"IPv4-mapped metadata address", "http://[::ffff:169.254.169.254]/", p, true},
		{"Azure wire server", "http://168.63.129.16/", p, true},
		{"metadata name", "http://metadata.google.internal/", p, true},
		{"metadata name, upper case, root dot", "http://METADATA.GOOGLE.INTERNAL./", p, true},
		{"not http", "ftp://alloc.example.com/", p, true},
		{"allowed link-local network", "http://169.254.10.7:8080/allocate", allowed, false},
		{"other link-local address despite an allowed network", "http://169.254.169.254/", allowed, true},
		{"loopback", "http://127.0.0.1:8080/allocate", p, false},
		{"private network", "https://10.0.0.5/allocate", p, false},
		{"name", "https://alloc.example.com/allocate", p, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.CheckURL(tc.url)
			if (err != nil) != tc.refused {
				t.Fatalf("CheckURL(%q) = %v, refused want %v", tc.url, err, tc.refused)
			}
		})
	}
}

func TestNoWebhook(t *testing.T) {
	in := input("")
	in.Group.CustomAllocationDefinition = nil
	_, err := newPolicy(t, Config{}).Allocate(context.Background(), in)
	var we *WebhookError
	if !errors.As(err, &we) || we.Kind != KindNoWebhook {
		t.Fatalf("err = %v", err)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"negative timeout", Config{Timeout: -1}, false},
		{"too many retries", Config{Retries: MaxRetries + 1}, false},
		{"no retries", Config{Retries: -1}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
