package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/zdps/zdps/pkg/dps"
)

// TestBadInput: every malformed request gets a clear 4xx in the DPS format
// and changes nothing in the store.
func TestBadInput(t *testing.T) {
	e := newEnv(t, func(c *testConfig) { c.MaxBodyBytes = 4096 })
	e.must(req{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-1")}, http.StatusOK)
	e.must(req{method: http.MethodPut, path: "/enrollmentGroups/grp-1", body: symGroup("grp-1")}, http.StatusOK)
	before := e.dump()

	big := `{"registrationId":"dev-2","attestation":{"type":"symmetricKey"},"deviceId":"` + strings.Repeat("a", 5000) + `"}`
	for _, tc := range []struct {
		name   string
		q      req
		status int
		code   int
	}{
		{"malformed JSON", req{method: http.MethodPut, path: "/enrollments/dev-1", body: `{"registrationId":"dev-1",`}, 400, dps.CodeBadArgument},
		{"not JSON", req{method: http.MethodPut, path: "/enrollments/dev-1", body: `registrationId=dev-1`}, 400, dps.CodeBadArgument},
		{"empty body", req{method: http.MethodPut, path: "/enrollments/dev-1", body: ``}, 400, dps.CodeBadArgument},
		{"unknown field", req{method: http.MethodPut, path: "/enrollments/dev-1", body: `{"registrationId":"dev-1","attestation":{"type":"symmetricKey"},"color":"red"}`}, 400, dps.CodeBadArgument},
		{"trailing data", req{method: http.MethodPut, path: "/enrollments/dev-1", body: `{"registrationId":"dev-1","attestation":{"type":"symmetricKey"}} {}`}, 400, dps.CodeBadArgument},
		{"oversized body", req{method: http.MethodPut, path: "/enrollments/dev-2", body: big}, 413, dps.CodeTooLarge},
		{"oversized bulk", req{method: http.MethodPost, path: "/enrollments", body: `{"mode":"create","enrollments":[` + strings.Repeat(`{"registrationId":"x","attestation":{"type":"symmetricKey"}},`, 100) + `{}]}`}, 413, dps.CodeTooLarge},
		{"invalid ID in path", req{method: http.MethodPut, path: "/enrollments/-bad-", body: symEnrollment("-bad-")}, 400, dps.CodeBadArgument},
		{"invalid ID in GET", req{method: http.MethodGet, path: "/enrollments/bad%20id"}, 400, dps.CodeBadArgument},
		{"ID too long", req{method: http.MethodGet, path: "/enrollmentGroups/" + strings.Repeat("g", 129)}, 400, dps.CodeBadArgument},
		{"ID differs from path", req{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-9")}, 400, dps.CodeBadArgument},
		{"invalid key", req{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-1", "not base64!")}, 400, dps.CodeBadArgument},
		{"key too short", req{method: http.MethodPut, path: "/enrollmentGroups/grp-1", body: symGroup("grp-1", "AAAA")}, 400, dps.CodeBadArgument},
		{"unknown attestation", req{method: http.MethodPut, path: "/enrollments/dev-1", body: `{"registrationId":"dev-1","attestation":{"type":"password"}}`}, 400, dps.CodeBadArgument},
		{"wrong content type", req{method: http.MethodPut, path: "/enrollments/dev-1", body: `{}`, header: map[string]string{"Content-Type": "text/plain"}}, 400, dps.CodeBadArgument},
		{"unknown api-version", req{method: http.MethodGet, path: "/enrollments/dev-1?api-version=2018-01-01"}, 400, dps.CodeBadArgument},
		{"missing api-version", req{method: http.MethodGet, path: "/enrollments/dev-1?api-version="}, 400, dps.CodeBadArgument},
		{"bulk: unknown mode", req{method: http.MethodPost, path: "/enrollments", body: `{"mode":"upsert","enrollments":[{"registrationId":"x","attestation":{"type":"symmetricKey"}}]}`}, 400, dps.CodeBadArgument},
		{"bulk: no items", req{method: http.MethodPost, path: "/enrollments", body: `{"mode":"create","enrollments":[]}`}, 400, dps.CodeBadArgument},
		{"bulk: groups under enrollments", req{method: http.MethodPost, path: "/enrollments", body: `{"mode":"create","enrollmentGroups":[{"enrollmentGroupId":"x","attestation":{"type":"symmetricKey"}}]}`}, 400, dps.CodeBadArgument},
		{"unknown route", req{method: http.MethodGet, path: "/nothing/here"}, 404, dps.CodeRouteNotFound},
		{"method not allowed", req{method: http.MethodPatch, path: "/enrollments/dev-1", body: `{}`}, 405, dps.CodeMethodNotAllowed},
		{"undecodable path", req{method: http.MethodGet, path: "/enrollments/a%2Fb"}, 404, dps.CodeRouteNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.must(tc.q, tc.status)
			eb := r.errBody(t)
			if eb.ErrorCode != tc.code {
				t.Errorf("errorCode %d, want %d (%s)", eb.ErrorCode, tc.code, eb.Message)
			}
			if e.dump() != before {
				t.Fatal("store changed")
			}
		})
	}
	t.Run("api-version message names the accepted versions", func(t *testing.T) {
		eb := e.must(req{method: http.MethodGet, path: "/enrollments/dev-1?api-version=1"}, 400).errBody(t)
		for _, v := range dps.APIVersions {
			if !strings.Contains(eb.Message, v) {
				t.Errorf("message %q does not name %s", eb.Message, v)
			}
		}
	})
	t.Run("every accepted api-version works", func(t *testing.T) {
		for _, v := range dps.APIVersions {
			e.must(req{method: http.MethodGet, path: "/enrollments/dev-1?api-version=" + v}, http.StatusOK)
		}
	})
}

// TestPathsAnyCase: the Node service SDK sends /enrollmentgroups/, the C
// SDK percent-encodes IDs with lower-case hex, and the bulk call comes
// with a trailing slash.
func TestPathsAnyCase(t *testing.T) {
	e := newEnv(t)
	e.must(req{method: http.MethodPut, path: "/ENROLLMENTS/sym%3adev.1_x", body: symEnrollment("sym:dev.1_x")}, http.StatusOK)
	e.must(req{method: http.MethodGet, path: "/Enrollments/SYM:DEV.1_X"}, http.StatusOK)
	e.must(req{method: http.MethodGet, path: "/enrollments/sym%3Adev.1_x"}, http.StatusOK)
	e.must(req{method: http.MethodPost, path: "/enrollments/sym%3adev.1_x/AttestationMechanism"}, http.StatusOK)
	e.must(req{method: http.MethodPut, path: "/enrollmentgroups/grp%2d1", body: symGroup("grp-1")}, http.StatusOK)
	e.must(req{method: http.MethodGet, path: "/EnrollmentGroups/GRP-1"}, http.StatusOK)
	e.must(req{method: http.MethodPost, path: "/enrollmentgroups/query", body: `{"query":"*"}`}, http.StatusOK)
	e.must(req{method: http.MethodPost, path: "/enrollments/", body: map[string]any{"mode": "create", "enrollments": []any{symEnrollment("dev-7")}}}, http.StatusOK)
	e.must(req{method: http.MethodPost, path: "/enrollmentgroups/", body: map[string]any{"mode": "create", "enrollmentGroups": []any{symGroup("grp-7")}}}, http.StatusOK)
	e.must(req{method: http.MethodGet, path: "/enrollments/dev-7"}, http.StatusOK)
	e.must(req{method: http.MethodGet, path: "/HEALTHZ", noToken: true}, http.StatusOK)
	e.must(req{method: http.MethodGet, path: "/Hubs"}, http.StatusOK)
	e.must(req{method: http.MethodGet, path: "/Policies/ProvisioningServiceOwner"}, http.StatusOK)
}
