package api

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/internal/pathcase"
	"github.com/zdps/zdps/pkg/enrollment"
)

// rightPublic marks the routes that need no authentication.
const rightPublic = "public"

// routeRights is the right each route requires, keyed by "METHOD pattern"
// exactly as chi reports the route. It is the single place where access is
// decided: routes() refuses to register a route missing here, and a test
// walks the router and fails on any route without a right or any right
// without a route.
//
// Reading an enrollment's keys (POST .../attestationmechanism) requires
// EnrollmentWrite, not EnrollmentRead: the keys let their holder register
// as the device (or, for a group, as any device of the group), which is
// more than a reader of enrollments may do.
var routeRights = map[string]string{
	"GET /healthz": rightPublic,
	// CRLs are public: relying parties fetch them without credentials and
	// the signature protects them.
	"GET /crl": rightPublic,

	"GET /enrollments/{registrationId}":                               enrollment.RightEnrollmentRead,
	"PUT /enrollments/{registrationId}":                               enrollment.RightEnrollmentWrite,
	"DELETE /enrollments/{registrationId}":                            enrollment.RightEnrollmentWrite,
	"POST /enrollments/{registrationId}/attestationmechanism":         enrollment.RightEnrollmentWrite,
	"POST /enrollments/query":                                         enrollment.RightEnrollmentRead,
	"POST /enrollments":                                               enrollment.RightEnrollmentWrite,
	"GET /enrollmentGroups/{enrollmentGroupId}":                       enrollment.RightEnrollmentRead,
	"PUT /enrollmentGroups/{enrollmentGroupId}":                       enrollment.RightEnrollmentWrite,
	"DELETE /enrollmentGroups/{enrollmentGroupId}":                    enrollment.RightEnrollmentWrite,
	"POST /enrollmentGroups/{enrollmentGroupId}/attestationmechanism": enrollment.RightEnrollmentWrite,
	"POST /enrollmentGroups/query":                                    enrollment.RightEnrollmentRead,
	"POST /enrollmentGroups":                                          enrollment.RightEnrollmentWrite,

	"GET /registrations/{registrationId}":           enrollment.RightRegistrationStatusRead,
	"DELETE /registrations/{registrationId}":        enrollment.RightRegistrationStatusWrite,
	"POST /registrations/{enrollmentGroupId}/query": enrollment.RightRegistrationStatusRead,
	"POST /registrations/query":                     enrollment.RightRegistrationStatusRead,

	"GET /hubs":           enrollment.RightServiceConfig,
	"GET /hubs/{name}":    enrollment.RightServiceConfig,
	"PUT /hubs/{name}":    enrollment.RightServiceConfig,
	"DELETE /hubs/{name}": enrollment.RightServiceConfig,

	"GET /policies":                 enrollment.RightServiceConfig,
	"GET /policies/{keyName}":       enrollment.RightServiceConfig,
	"PUT /policies/{keyName}":       enrollment.RightServiceConfig,
	"DELETE /policies/{keyName}":    enrollment.RightServiceConfig,
	"POST /policies/{keyName}/keys": enrollment.RightServiceConfig,

	"GET /settings": enrollment.RightServiceConfig,
	"PUT /settings": enrollment.RightServiceConfig,

	"POST /allocation/explain": enrollment.RightServiceConfig,

	"GET /certificates":                          enrollment.RightServiceConfig,
	"GET /certificates/{name}":                   enrollment.RightServiceConfig,
	"PUT /certificates/{name}":                   enrollment.RightServiceConfig,
	"DELETE /certificates/{name}":                enrollment.RightServiceConfig,
	"POST /certificates/{name}/verificationCode": enrollment.RightServiceConfig,
	"POST /certificates/{name}/verify":           enrollment.RightServiceConfig,

	"GET /ca":        enrollment.RightServiceConfig,
	"GET /ca/bundle": enrollment.RightServiceConfig,

	// A backup holds every key of the store, policies' included: only a
	// holder of ServiceConfig, who can read those anyway, may take one.
	"GET /backup": enrollment.RightServiceConfig,
}

// Route is one route of the service API and the right it requires.
type Route struct {
	Method  string
	Pattern string // as chi matches it, e.g. /enrollments/{registrationId}
	// Right is the policy right a caller needs (enrollment.Right*), ""
	// for a public route.
	Right string
}

// Routes is the service API's route table, sorted by pattern and method:
// what a test of the authorization matrix iterates over. The device API's
// routes (mounted by internal/deviceapi) authenticate devices, not policies, and
// are not in it.
func Routes() []Route {
	out := make([]Route, 0, len(routeRights))
	for k, right := range routeRights {
		method, pattern, _ := strings.Cut(k, " ")
		if right == rightPublic {
			right = ""
		}
		out = append(out, Route{Method: method, Pattern: pattern, Right: right})
	}
	slices.SortFunc(out, func(a, b Route) int {
		if c := strings.Compare(a.Pattern, b.Pattern); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})
	return out
}

// NewRouter is a router with the middleware every route zdps serves runs
// under (request ID, access log, panic recovery, case-insensitive paths
// with decoded IDs, body limit) and DPS-format 404 and 405 answers: the
// root router cmd/zdps mounts each API's routes on. Trailing slashes are
// removed before routing (pathcase), so "POST /enrollments/" (the
// Node service SDK's bulk call) reaches "POST /enrollments".
func (a *API) NewRouter() *chi.Mux {
	r := chi.NewRouter()
	r.Use(a.requestID, a.accessLog, a.recoverer, literals.Middleware, a.limitBody)
	r.NotFound(func(w http.ResponseWriter, req *http.Request) { a.writeError(w, req, errRouteNotFound) })
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) { a.writeError(w, req, errMethodNotAllowed) })
	return r
}

// Routes adds the service API's routes (with /healthz, /ca and /crl) to r,
// each under the right routeRights declares. Another API's routes (the
// device API: /{idScope}/registrations/...) go on the same router without
// service auth, which they replace with their own; the literal segments
// they use must be in literals, or they are matched case-sensitively.
func (a *API) Routes(r chi.Router) {
	// New built its own router with the same routes, so none lacks a right.
	_ = a.routes(r)
}

// routes adds the service API's routes to r, refusing any route without a
// declared right.
func (a *API) routes(r chi.Router) error {
	var missing []string
	route := func(method, pattern string, h http.HandlerFunc) {
		key := method + " " + pattern
		right, ok := routeRights[key]
		if !ok {
			missing = append(missing, key)
			return
		}
		if right == rightPublic {
			r.Method(method, pattern, h)
			return
		}
		r.Method(method, pattern, a.authorize(right, a.requireAPIVersion(h)))
	}

	route(http.MethodGet, "/healthz", a.healthz)

	docRoutes(a, route, &enrollments)
	docRoutes(a, route, &groups)

	route(http.MethodGet, "/registrations/{registrationId}", getOne(a, registrations, a.uc.Registrations.Registration, as((*enrollment.Registration).ServiceState), "", nil))
	route(http.MethodDelete, "/registrations/{registrationId}", deleteOne(a, registrations, a.uc.Registrations.DeleteRegistration))
	route(http.MethodPost, "/registrations/{enrollmentGroupId}/query", a.queryGroupRegistrations)
	route(http.MethodPost, "/registrations/query", a.queryRegistrations)

	route(http.MethodGet, "/hubs", a.listHubs)
	route(http.MethodGet, "/hubs/{name}", getOne(a, hubs, a.uc.Resources.Hub, as(same[*enrollment.Hub]), "", nil))
	route(http.MethodPut, "/hubs/{name}", putOne(a, hubs, enrollment.DecodeHub, hubName, "name", a.uc.Resources.PutHub, same))
	route(http.MethodDelete, "/hubs/{name}", deleteOne(a, hubs, a.uc.Resources.DeleteHub))

	route(http.MethodGet, "/policies", a.listPolicies)
	route(http.MethodGet, "/policies/{keyName}", getOne(a, policies, a.uc.Resources.Policy, as((*enrollment.SharedAccessPolicy).Redacted), "", nil))
	route(http.MethodPut, "/policies/{keyName}", putOne(a, policies, enrollment.DecodeSharedAccessPolicy, policyKeyName, "keyName", a.uc.Resources.PutPolicy, (*enrollment.SharedAccessPolicy).Redacted))
	route(http.MethodDelete, "/policies/{keyName}", deleteOne(a, policies, a.uc.Resources.DeletePolicy))
	route(http.MethodPost, "/policies/{keyName}/keys", getOne(a, policies, a.uc.Resources.Policy, as(same[*enrollment.SharedAccessPolicy]), "read-keys", policyKeyName))

	route(http.MethodGet, "/settings", a.getSettings)
	route(http.MethodPut, "/settings", a.putSettings)

	route(http.MethodPost, "/allocation/explain", a.explainAllocation)

	route(http.MethodGet, "/certificates", a.listCertificates)
	route(http.MethodGet, "/certificates/{name}", getOne(a, caCerts, a.uc.Certificates.CACertificate, as((*enrollment.CACertificate).Redacted), "", nil))
	route(http.MethodPut, "/certificates/{name}", putOne(a, caCerts, enrollment.DecodeCACertificate, caName, "name", a.uc.Certificates.PutCACertificate, (*enrollment.CACertificate).Redacted))
	route(http.MethodDelete, "/certificates/{name}", deleteOne(a, caCerts, a.uc.Certificates.DeleteCACertificate))
	route(http.MethodPost, "/certificates/{name}/verificationCode", getOne(a, caCerts, a.uc.Certificates.VerificationCode, as(verificationCode), "verification-code", caName))
	route(http.MethodPost, "/certificates/{name}/verify", a.verifyCertificate)

	route(http.MethodGet, "/ca", a.getCA)
	route(http.MethodGet, "/ca/bundle", a.getCABundle)
	route(http.MethodGet, "/crl", a.getCRL)

	route(http.MethodGet, "/backup", a.getBackup)

	if len(missing) > 0 {
		return fmt.Errorf("api: routes without a declared right: %v", missing)
	}
	return nil
}

// literals are the fixed path segments of every route zdps serves
// (service and device API). Routing ignores their case (pathcase); a
// segment a mounted API uses must be here, or it is matched
// case-sensitively.
var literals = pathcase.New(
	"healthz", "enrollments", "enrollmentGroups", "registrations", "query",
	"attestationmechanism", "hubs", "policies", "keys", "settings",
	"certificates", "verificationCode", "verify", "allocation", "explain", "ca", "bundle", "crl", "backup",
	// device API
	"register", "operations",
)
