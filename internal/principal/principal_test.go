package principal

import (
	"context"
	"testing"
)

func TestPrincipal(t *testing.T) {
	p := Principal{Kind: KindUser, Name: "ana@example.com", Rights: []string{"EnrollmentRead", "ServiceConfig"}}
	for _, tc := range []struct {
		right string
		want  bool
	}{
		{"EnrollmentRead", true},
		{"enrollmentread", true},
		{"EnrollmentWrite", false},
		{"", false},
	} {
		if got := p.HasRight(tc.right); got != tc.want {
			t.Errorf("HasRight(%q) = %v, want %v", tc.right, got, tc.want)
		}
	}
	if got := p.Actor(); got != "user:ana@example.com" {
		t.Errorf("Actor = %q", got)
	}
	if _, ok := From(context.Background()); ok {
		t.Error("From(empty context) found a principal")
	}
	got, ok := From(With(context.Background(), p))
	if !ok || got.Actor() != p.Actor() {
		t.Errorf("From(With(p)) = %v, %v", got, ok)
	}
}
