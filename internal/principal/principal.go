package principal

import (
	"context"
	"slices"
	"strings"
)

// Kinds of principal.
const (
	KindPolicy = "policy" // a shared access policy (SAS token)
	KindUser   = "user"   // a user signed in through OIDC
)

// Principal is an authenticated caller of the service API or the console.
type Principal struct {
	Kind   string   // KindPolicy or KindUser
	Name   string   // the policy's key name, or the user's name (email, else subject)
	Rights []string // the DPS rights held (enrollment.Right* values)
}

// Actor is how the audit trail names p ("policy:owner", "user:ana@example.com").
func (p Principal) Actor() string { return p.Kind + ":" + p.Name }

// HasRight reports whether p holds right (compared without case, as Azure
// compares rights).
func (p Principal) HasRight(right string) bool {
	return slices.ContainsFunc(p.Rights, func(r string) bool { return strings.EqualFold(r, right) })
}

type ctxKey struct{}

// With returns ctx carrying p.
func With(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// From returns the principal With put in ctx.
func From(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}
