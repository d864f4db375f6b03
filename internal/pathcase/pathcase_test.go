package pathcase

import "testing"

func TestCanonical(t *testing.T) {
	l := New("enrollmentGroups", "query", "registrations")
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"/ENROLLMENTGROUPS/g1/", "/enrollmentGroups/g1", true},
		{"/enrollmentgroups/query", "/enrollmentGroups/query", true},
		{"/0ne1/registrations/sym%3adev", "/0ne1/registrations/sym:dev", true},
		{"/", "/", true},
		{"", "/", true},
		{"/a%2fb", "", false},
		{"/a%zz", "", false},
		{"/Unknown/Case", "/Unknown/Case", true},
	} {
		got, ok := l.Canonical(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Canonical(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
