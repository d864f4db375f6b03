package oidcauth

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/zdps/zdps/internal/principal"
)

// Bearer verifies JWT access tokens for the service API.
type Bearer struct {
	p        *Provider
	verifier *oidc.IDTokenVerifier
}

// Bearer is the access token check; it needs Config.Audience.
func (p *Provider) Bearer() (*Bearer, error) {
	if p.cfg.Audience == "" {
		return nil, errors.New("oidc: bearer tokens need an audience (--oidc-audience)")
	}
	return &Bearer{p: p, verifier: p.verifier(p.cfg.Audience)}, nil
}

// Verify checks raw (the token after "Bearer "): its signature against
// the issuer's JWKS, its issuer, its audience and its expiry. It returns
// the user with the rights the role claim maps to, which may be none (the
// caller answers 403 for the right it needs). A refusal wraps
// ErrInvalidToken with a reason that holds no part of the token.
func (b *Bearer) Verify(ctx context.Context, raw string) (principal.Principal, error) {
	if strings.Count(raw, ".") != 2 {
		return principal.Principal{}, fmt.Errorf("%w: not a JWT", ErrInvalidToken)
	}
	t, err := b.verifier.Verify(b.p.ctx(ctx), raw)
	if err != nil {
		return principal.Principal{}, fmt.Errorf("%w: %s", ErrInvalidToken, reason(err, b.p.cfg.Issuer, b.p.cfg.Audience))
	}
	var claims map[string]any
	if err := t.Claims(&claims); err != nil {
		return principal.Principal{}, fmt.Errorf("%w: claims are not a JSON object", ErrInvalidToken)
	}
	p := user(claims)
	if p.Name == "" {
		return principal.Principal{}, fmt.Errorf("%w: no subject", ErrInvalidToken)
	}
	p.Rights, _ = b.p.mapper.rights(claims)
	return p, nil
}

func user(claims map[string]any) principal.Principal {
	return principal.Principal{Kind: principal.KindUser, Name: name(claims)}
}

// reason says why go-oidc refused a token, in words of this package:
// its messages may quote claims, never the token, but they are worded
// for developers.
func reason(err error, issuer, audience string) string {
	var expired *oidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &expired):
		return "token expired at " + expired.Expiry.UTC().Format("2006-01-02T15:04:05Z")
	case strings.Contains(msg, "fetching keys"):
		return "the issuer's keys could not be fetched"
	case strings.Contains(msg, "expected audience"):
		return fmt.Sprintf("token is not for audience %q", audience)
	case strings.Contains(msg, "different provider"):
		return fmt.Sprintf("token was not issued by %s", issuer)
	case strings.Contains(msg, "failed to verify signature"):
		return "signature does not verify with the issuer's keys"
	case strings.Contains(msg, "malformed"), strings.Contains(msg, "unmarshal"):
		return "malformed JWT"
	case strings.Contains(msg, "unsupported signing"), strings.Contains(msg, "algorithm"):
		return "token is signed with an algorithm the issuer does not use"
	case strings.Contains(msg, "nbf"):
		return "token is not valid yet"
	}
	return "token does not verify"
}
