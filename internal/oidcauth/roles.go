package oidcauth

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/zdps/zdps/pkg/enrollment"
)

// Role presets: the rights each grants. A viewer sees, an enrollment
// manager also writes enrollments and groups, an admin configures.
const (
	RoleViewer            = "viewer"
	RoleEnrollmentManager = "enrollment-manager"
	RoleAdmin             = "admin"
)

// Presets are the rights of each role.
var Presets = map[string][]string{
	RoleViewer: {enrollment.RightEnrollmentRead, enrollment.RightRegistrationStatusRead},
	RoleEnrollmentManager: {enrollment.RightEnrollmentRead, enrollment.RightRegistrationStatusRead,
		enrollment.RightEnrollmentWrite},
	RoleAdmin: {enrollment.RightServiceConfig, enrollment.RightEnrollmentRead, enrollment.RightEnrollmentWrite,
		enrollment.RightRegistrationStatusRead, enrollment.RightRegistrationStatusWrite},
}

// RoleNames are the presets' names, sorted.
func RoleNames() []string { return slices.Sorted(maps.Keys(Presets)) }

// ParseRoleMapping parses VALUE=ROLE (a value of the role claim and the
// preset it grants) as the --oidc-role flag gives it.
func ParseRoleMapping(s string) (value, role string, err error) {
	value, role, ok := strings.Cut(s, "=")
	value, role = strings.TrimSpace(value), strings.TrimSpace(role)
	if !ok || value == "" || role == "" {
		return "", "", fmt.Errorf("role mapping %q: want CLAIM_VALUE=ROLE, e.g. zdps-admins=admin", s)
	}
	if _, ok := Presets[role]; !ok {
		return "", "", fmt.Errorf("role mapping %q: unknown role %q; the roles are %s", s, role, strings.Join(RoleNames(), ", "))
	}
	return value, role, nil
}

// mapper turns a token's claims into rights.
type mapper struct {
	claim string
	roles map[string]string // claim value → preset
}

// values are the role claim's values in claims: a string or an array of
// strings, found by its exact name first, else as a dotted path into
// nested objects (Keycloak's realm_access.roles).
func (m mapper) values(claims map[string]any) []string {
	v, ok := claims[m.claim]
	if !ok && strings.Contains(m.claim, ".") {
		var cur any = claims
		for _, part := range strings.Split(m.claim, ".") {
			obj, isObj := cur.(map[string]any)
			if !isObj {
				cur = nil
				break
			}
			cur = obj[part]
		}
		v = cur
	}
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// rights is the union of the rights the claim's values grant, and the
// roles they name.
func (m mapper) rights(claims map[string]any) (rights, roles []string) {
	for _, v := range m.values(claims) {
		role, ok := m.roles[v]
		if !ok || slices.Contains(roles, role) {
			continue
		}
		roles = append(roles, role)
		for _, r := range Presets[role] {
			if !slices.Contains(rights, r) {
				rights = append(rights, r)
			}
		}
	}
	slices.Sort(roles)
	return rights, roles
}

// name is how the audit trail names the user: the email, else the
// subject. An email the provider says is unverified is not used: a user
// could have typed anyone's, and the trail would name that person.
func name(claims map[string]any) string {
	verified, said := claims["email_verified"].(bool)
	if e, ok := claims["email"].(string); ok && e != "" && (!said || verified) {
		return e
	}
	s, _ := claims["sub"].(string)
	return s
}
