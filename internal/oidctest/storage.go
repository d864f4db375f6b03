package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// storage is the provider's state, in memory: clients, users, pending
// sign-ins and device codes, issued tokens. It implements op.Storage and
// op.DeviceAuthorizationStorage.
type storage struct {
	audience   string
	atLifetime time.Duration
	// groupsAtUserinfoOnly leaves the groups out of ID tokens.
	groupsAtUserinfoOnly bool
	key                  *rsa.PrivateKey
	keyID                string

	mu       sync.Mutex
	clients  map[string]*client
	users    map[string]*User // by ID
	requests map[string]*authRequest
	codes    map[string]string // code → request ID
	tokens   map[string]*token // access token ID → token
	refresh  map[string]*token // refresh token → token
	devices  map[string]*op.DeviceAuthorizationState
	userCode map[string]string // user code → device code
	shown    map[string]bool   // user codes NextUserCode returned
}

var (
	_ op.Storage                    = (*storage)(nil)
	_ op.DeviceAuthorizationStorage = (*storage)(nil)
)

func randomID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// token is an issued access token (and its refresh token, if any).
type token struct {
	id, refresh       string
	clientID, subject string
	audience, scopes  []string
	amr               []string
	authTime          time.Time
	expires           time.Time
}

func (t *token) GetAMR() []string             { return t.amr }
func (t *token) GetAudience() []string        { return t.audience }
func (t *token) GetAuthTime() time.Time       { return t.authTime }
func (t *token) GetClientID() string          { return t.clientID }
func (t *token) GetScopes() []string          { return t.scopes }
func (t *token) GetSubject() string           { return t.subject }
func (t *token) SetCurrentScopes(sc []string) { t.scopes = sc }

// authRequest is a pending sign-in of the authorization code flow.
type authRequest struct {
	id, clientID, redirectURI, state, nonce string
	scopes                                  []string
	responseType                            oidc.ResponseType
	responseMode                            oidc.ResponseMode
	challenge                               *oidc.CodeChallenge
	audience                                []string
	userID                                  string
	authTime                                time.Time
	done                                    bool
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAMR() []string                      { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string                 { return a.audience }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.userID }
func (a *authRequest) Done() bool                            { return a.done }

// audienceFor is every token's audience: the client and the API.
func (s *storage) audienceFor(clientID string) []string {
	if s.audience == "" || s.audience == clientID {
		return []string{clientID}
	}
	return []string{clientID, s.audience}
}

func (s *storage) CreateAuthRequest(_ context.Context, r *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	if r.CodeChallenge == "" || r.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		// Like a provider configured to require PKCE: a client that does
		// not send an S256 challenge cannot sign anyone in.
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE with code_challenge_method=S256 is required")
	}
	if slices.Contains(r.Prompt, oidc.PromptNone) {
		return nil, oidc.ErrLoginRequired()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &authRequest{
		id: randomID(), clientID: r.ClientID, redirectURI: r.RedirectURI, state: r.State, nonce: r.Nonce,
		scopes: r.Scopes, responseType: r.ResponseType, responseMode: r.ResponseMode,
		challenge: &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: r.CodeChallengeMethod},
		audience:  s.audienceFor(r.ClientID), userID: userID,
	}
	s.requests[a.id] = a
	return a, nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.requests[id]
	if !ok {
		return nil, errors.New("auth request not found")
	}
	return a, nil
}

func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, errors.New("code invalid or used")
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for c, rid := range s.codes {
		if rid == id {
			delete(s.codes, c)
		}
	}
	return nil
}

// signIn completes a pending sign-in for the user with these credentials.
func (s *storage) signIn(requestID, username, password string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.requests[requestID]
	if !ok {
		return errors.New("no such sign-in (it expired or was completed)")
	}
	u := s.check(username, password)
	if u == nil {
		return errors.New("wrong username or password")
	}
	a.userID, a.authTime, a.done = u.ID, time.Now(), true
	return nil
}

// check returns the user with these credentials; s.mu is held.
func (s *storage) check(username, password string) *User {
	for _, u := range s.users {
		if u.Username == username && u.Password == password {
			return u
		}
	}
	return nil
}

func (s *storage) newToken(req op.TokenRequest, clientID string, withRefresh bool) *token {
	t := &token{
		id: randomID(), clientID: clientID, subject: req.GetSubject(),
		audience: req.GetAudience(), scopes: req.GetScopes(),
		expires: time.Now().Add(s.atLifetime),
	}
	if r, ok := req.(op.IDTokenRequest); ok {
		t.amr, t.authTime = r.GetAMR(), r.GetAuthTime()
	}
	if withRefresh {
		t.refresh = randomID()
		s.refresh[t.refresh] = t
	}
	s.tokens[t.id] = t
	return t
}

func clientOf(req op.TokenRequest) string {
	if r, ok := req.(interface{ GetClientID() string }); ok {
		return r.GetClientID()
	}
	return ""
}

func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.newToken(req, clientOf(req), false)
	return t.id, t.expires, nil
}

func (s *storage) CreateAccessAndRefreshTokens(_ context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if current != "" {
		// Refresh token rotation: the old one is spent.
		old, ok := s.refresh[current]
		if !ok {
			return "", "", time.Time{}, errors.New("invalid refresh token")
		}
		delete(s.refresh, current)
		delete(s.tokens, old.id)
	}
	t := s.newToken(req, clientOf(req), true)
	return t.id, t.refresh, t.expires, nil
}

func (s *storage) TokenRequestByRefreshToken(_ context.Context, refresh string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.refresh[refresh]
	if !ok {
		return nil, errors.New("invalid refresh token")
	}
	c := *t
	return &c, nil
}

func (s *storage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.tokens {
		if t.subject == userID && t.clientID == clientID {
			delete(s.tokens, id)
			delete(s.refresh, t.refresh)
		}
	}
	return nil
}

func (s *storage) RevokeToken(_ context.Context, tokenOrID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[tokenOrID]; ok && t.clientID == clientID {
		delete(s.tokens, tokenOrID)
	}
	if t, ok := s.refresh[tokenOrID]; ok && t.clientID == clientID {
		delete(s.refresh, tokenOrID)
		delete(s.tokens, t.id)
	}
	return nil
}

func (s *storage) GetRefreshTokenInfo(_ context.Context, _, refresh string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.refresh[refresh]
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	// The refresh token is its own ID: RevokeToken gets it back.
	return t.subject, t.refresh, nil
}

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	return signingKey{s.keyID, s.key}, nil
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{signingKey{s.keyID, s.key}}}, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, fmt.Errorf("unknown client %q", id)
	}
	return c, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok || c.secret == "" || c.secret != secret {
		return errors.New("wrong client ID or secret")
	}
	return nil
}

// SetUserinfoFromScopes puts the user's claims into ID tokens and the
// userinfo answer: the subject, the email for the email scope, and the
// groups always (as a provider with a groups mapper on the client does).
func (s *storage) SetUserinfoFromScopes(_ context.Context, info *oidc.UserInfo, userID, _ string, scopes []string) error {
	return s.userinfo(info, userID, scopes, !s.groupsAtUserinfoOnly)
}

func (s *storage) userinfo(info *oidc.UserInfo, userID string, scopes []string, groups bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[userID]
	if !ok {
		return errors.New("user not found")
	}
	info.Subject = u.ID
	if slices.Contains(scopes, oidc.ScopeEmail) && u.Email != "" {
		info.Email, info.EmailVerified = u.Email, true
	}
	if slices.Contains(scopes, oidc.ScopeProfile) {
		info.PreferredUsername = u.Username
	}
	if groups {
		info.AppendClaims("groups", slices.Clone(u.Groups))
	}
	return nil
}

func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	s.mu.Lock()
	t, ok := s.tokens[tokenID]
	s.mu.Unlock()
	if !ok || t.subject != subject || time.Now().After(t.expires) {
		return errors.New("token is not valid")
	}
	return s.userinfo(info, subject, t.scopes, true)
}

func (s *storage) SetIntrospectionFromToken(ctx context.Context, in *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	return errors.New("introspection is not supported")
}

// GetPrivateClaimsFromScopes puts the groups and the email into JWT
// access tokens, which the zdps service API maps to rights.
func (s *storage) GetPrivateClaimsFromScopes(_ context.Context, userID, _ string, _ []string) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[userID]
	if !ok {
		return nil, errors.New("user not found")
	}
	claims := map[string]any{"groups": slices.Clone(u.Groups)}
	if u.Email != "" {
		claims["email"] = u.Email
	}
	return claims, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT profile grants are not supported")
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("JWT profile grants are not supported")
}

func (s *storage) Health(context.Context) error { return nil }

func (s *storage) StoreDeviceAuthorization(_ context.Context, clientID, deviceCode, userCode string, expires time.Time, scopes []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[clientID]; !ok {
		return fmt.Errorf("unknown client %q", clientID)
	}
	if _, ok := s.userCode[userCode]; ok {
		return op.ErrDuplicateUserCode
	}
	s.devices[deviceCode] = &op.DeviceAuthorizationState{
		ClientID: clientID, Audience: s.audienceFor(clientID), Scopes: scopes, Expires: expires,
	}
	s.userCode[userCode] = deviceCode
	return nil
}

func (s *storage) GetDeviceAuthorizatonState(ctx context.Context, clientID, deviceCode string) (*op.DeviceAuthorizationState, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.devices[deviceCode]
	if !ok || st.ClientID != clientID {
		return nil, errors.New("device code not found for this client")
	}
	c := *st
	return &c, nil
}

// approveDevice completes the device authorization of userCode for the
// user with these credentials (deny refuses it instead).
func (s *storage) approveDevice(userCode, username, password string, deny bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.devices[s.userCode[userCode]]
	if !ok {
		return errors.New("unknown user code")
	}
	if time.Now().After(st.Expires) {
		return errors.New("the user code expired")
	}
	u := s.check(username, password)
	if u == nil {
		return errors.New("wrong username or password")
	}
	if deny {
		st.Denied = true
		return nil
	}
	st.Subject, st.AMR, st.AuthTime, st.Done = u.ID, []string{"pwd"}, time.Now(), true
	return nil
}
