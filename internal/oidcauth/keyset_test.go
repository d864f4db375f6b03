package oidcauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// A request whose key is cached does not wait while another one's
// unknown key makes the set fetch from a slow issuer.
func TestKeySetCachedKeysDoNotWaitForAFetch(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	release := make(chan struct{})
	slow := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if slow {
			<-release
		}
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	}))
	defer srv.Close()
	defer close(release)
	now := time.Now()
	k := &keySet{url: srv.URL, client: srv.Client(), algs: []jose.SignatureAlgorithm{jose.RS256}, now: func() time.Time { return now }}
	if _, err := k.refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	sign := func(priv *rsa.PrivateKey, kid string) string {
		s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: priv}, (&jose.SignerOptions{}).WithHeader("kid", kid))
		jws, _ := s.Sign([]byte(`{"sub":"x"}`))
		out, _ := jws.CompactSerialize()
		return out
	}
	slow, now = true, now.Add(MinKeyRefresh)
	go func() { _, _ = k.VerifySignature(context.Background(), sign(other, "k2")) }() // fetches, and hangs
	time.Sleep(100 * time.Millisecond)
	done := make(chan error, 1)
	go func() { _, err := k.VerifySignature(context.Background(), sign(key, "k1")); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a token with a cached key waited for the fetch")
	}
}
