package oidcauth_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/oidcauth"
	"github.com/zdps/zdps/internal/oidctest"
)

// FuzzBearerVerify sends arbitrary strings as bearer tokens. Properties:
// no panic; every refusal wraps ErrInvalidToken; no reason quotes the
// input; nothing but the one valid seed is accepted.
func FuzzBearerVerify(f *testing.F) {
	op := oidctest.Start(f, oidctest.Config{Audience: audience})
	p, err := oidcauth.New(context.Background(), oidcauth.Config{
		Issuer: op.Issuer, Audience: audience, Roles: roles, Logger: discard(),
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: op.RootCAs}}},
	})
	if err != nil {
		f.Fatal(err)
	}
	b, err := p.Bearer()
	if err != nil {
		f.Fatal(err)
	}
	valid, err := op.MintAccessToken(map[string]any{"sub": "fuzz", "aud": audience, "exp": time.Now().Add(24 * time.Hour).Unix(), "groups": []string{"dps-viewers"}})
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	for _, s := range []string{
		valid, "", ".", "..", "a.b.c", parts[0] + "." + parts[1] + ".", parts[0] + ".." + parts[2],
		"eyJhbGciOiJub25lIn0." + parts[1] + ".", // alg none
		"eyJhbGciOiJIUzI1NiJ9." + parts[1] + "." + parts[2],
		parts[0] + "." + parts[1] + "." + parts[2] + "." + parts[2],
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		pr, err := b.Verify(context.Background(), tok)
		if err == nil {
			if tok != valid || pr.Name != "fuzz" {
				t.Fatalf("accepted %q as %+v", tok, pr)
			}
			return
		}
		if !errors.Is(err, oidcauth.ErrInvalidToken) {
			t.Fatalf("refusal %v does not wrap ErrInvalidToken", err)
		}
		if len(tok) >= 12 && strings.Contains(err.Error(), tok) {
			t.Fatalf("the reason quotes the token: %v", err)
		}
	})
}

// BenchmarkBearerVerify is the cost the bearer check adds to a service
// API call: parsing, one RS256 signature with a cached key, the claims.
func BenchmarkBearerVerify(b *testing.B) {
	op := oidctest.Start(b, oidctest.Config{Audience: audience})
	p, err := oidcauth.New(context.Background(), oidcauth.Config{
		Issuer: op.Issuer, Audience: audience, Roles: roles, Logger: discard(),
		HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: op.RootCAs}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	v, _ := p.Bearer()
	tok, err := op.MintAccessToken(map[string]any{"sub": "u", "email": "u@example.com", "aud": audience, "exp": time.Now().Add(time.Hour).Unix(), "groups": []string{"staff", "dps-admins"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}
