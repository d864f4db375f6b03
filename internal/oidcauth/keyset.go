package oidcauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// MinKeyRefresh is the least time between two fetches of the issuer's
// JWKS. A token whose key is not cached causes a fetch (the issuer may
// have rotated its keys), but anyone can send such tokens: without this
// bound each forged token would make zdps call the issuer.
const MinKeyRefresh = time.Minute

// keySet is the issuer's JWKS, cached (oidc.KeySet). go-oidc's
// RemoteKeySet fetches again on every signature that fails to verify.
type keySet struct {
	url    string
	client *http.Client
	algs   []jose.SignatureAlgorithm
	now    func() time.Time

	// fetch serializes fetches; mu guards the cache only, so requests
	// whose key is cached never wait for a fetch.
	fetch   sync.Mutex
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time
	fetches int
}

var errKeyUnknown = errors.New("failed to verify signature: no key of the issuer verifies it")

func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, k.algs)
	if err != nil {
		return nil, fmt.Errorf("malformed jwt: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("malformed jwt: not exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, stale := k.cached()
	if p, ok := verifyWith(jws, keys, kid); ok {
		return p, nil
	}
	if !stale {
		return nil, errKeyUnknown
	}
	keys, err = k.refresh(ctx)
	if err != nil {
		return nil, err
	}
	if p, ok := verifyWith(jws, keys, kid); ok {
		return p, nil
	}
	return nil, errKeyUnknown
}

func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) ([]byte, bool) {
	for _, key := range keys {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		if p, err := jws.Verify(&key); err == nil {
			return p, true
		}
	}
	return nil, false
}

// cached is the cached keys, and whether a fetch is allowed now.
func (k *keySet) cached() ([]jose.JSONWebKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys, k.fetched.IsZero() || k.now().Sub(k.fetched) >= MinKeyRefresh
}

// refresh fetches the JWKS, unless another caller just did; concurrent
// callers wait for one fetch.
func (k *keySet) refresh(ctx context.Context) ([]jose.JSONWebKey, error) {
	k.fetch.Lock()
	defer k.fetch.Unlock()
	k.mu.Lock()
	if !k.fetched.IsZero() && k.now().Sub(k.fetched) < MinKeyRefresh {
		keys := k.keys
		k.mu.Unlock()
		return keys, nil
	}
	k.fetched = k.now() // a failed fetch waits its turn too
	k.fetches++
	k.mu.Unlock()
	keys, err := k.get(ctx)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.keys = keys
	k.mu.Unlock()
	return keys, nil
}

// get reads the JWKS.
func (k *keySet) get(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching keys: %s answered %s", k.url, resp.Status)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("fetching keys: %s: %w", k.url, err)
	}
	keys := make([]jose.JSONWebKey, 0, len(set.Keys))
	for _, b := range set.Keys {
		var key jose.JSONWebKey
		// A key of a type go-jose does not know is skipped, not fatal.
		if key.UnmarshalJSON(b) == nil && key.Valid() {
			keys = append(keys, key)
		}
	}
	return keys, nil
}
