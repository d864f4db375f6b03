package sessions

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/principal"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Buckets of the console.
const (
	BucketSessions store.Bucket = "console-sessions"
	BucketLinks    store.Bucket = "console-links"
)

// CookieName is the session cookie. The __Host- prefix makes browsers
// refuse it unless it is Secure, for path / and without a Domain, so no
// other host or plain-HTTP page can set or read it.
const CookieName = "__Host-zdps-console"

// touchEvery bounds how often a session's last use is written: each page
// view need not be a store write. A quarter of the idle timeout when that
// is shorter, so an active session never looks idle.
const touchEvery = time.Minute

// Session is what the store keeps under the hash of the cookie value.
type Session struct {
	Principal principal.Principal `json:"principal"`
	CSRF      string              `json:"csrf"`
	Created   time.Time           `json:"created"`
	LastSeen  time.Time           `json:"lastSeen"`
}

// link is a one-time sign-in link, kept under the hash of its token.
type link struct {
	Principal principal.Principal `json:"principal"`
	Expires   time.Time           `json:"expires"`
}

// ErrNoSession is any reason a request has no valid session; the reason
// is not shown (it would tell an attacker which cookies were ever valid).
var ErrNoSession = errors.New("console: no valid session")

// ErrLinkGone is a sign-in link that is unknown, already used or expired.
var ErrLinkGone = errors.New("console: sign-in link used or expired")

// ErrRandomness is a token that could not be drawn.
var ErrRandomness = errors.New("console: randomness failed")

// Policies reads the shared access policies behind sessions
// (store.Store's Policies).
type Policies interface {
	Get(ctx context.Context, name string) (*enrollment.SharedAccessPolicy, error)
}

// Store keeps the sessions and links. Every field is required.
type Store struct {
	Backend  store.Backend
	Policies Policies
	Log      *slog.Logger
	Now      func() time.Time
	// IdleTimeout ends a session unused this long; MaxAge ends any
	// session this long after sign-in; LinkTTL is how long a sign-in link
	// may wait to be used.
	IdleTimeout, MaxAge, LinkTTL time.Duration
}

// newToken is 32 random bytes, URL-safe.
func newToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// tokenKey is the store key of a token: its SHA-256, so the store never
// holds a usable cookie or link.
func tokenKey(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// put stores v under the hash of tok in b, under cond.
func (s *Store) put(ctx context.Context, b store.Bucket, key string, v any, cond store.Condition) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.Backend.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, b, key, raw, cond)
		return err
	})
}

// Start stores a new session for p and sets its cookie.
func (s *Store) Start(ctx context.Context, w http.ResponseWriter, p principal.Principal) error {
	tok, err := newToken()
	if err != nil {
		return err
	}
	csrf, err := newToken()
	if err != nil {
		return err
	}
	now := s.Now()
	if err := s.put(ctx, BucketSessions, tokenKey(tok), &Session{Principal: p, CSRF: csrf, Created: now, LastSeen: now}, store.Condition{IfNoneMatch: true}); err != nil {
		return fmt.Errorf("console: store session: %w", err)
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: tok, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		MaxAge: int(s.MaxAge / time.Second),
	})
	s.Log.InfoContext(ctx, "console sign-in", "actor", p.Actor())
	return nil
}

// Load reads the request's session, ends it when it has expired and
// records its use. It returns the session's store key.
func (s *Store) Load(r *http.Request) (string, *Session, error) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" || len(ck.Value) > 128 {
		return "", nil, ErrNoSession
	}
	key := tokenKey(ck.Value)
	ctx := r.Context()
	var ses Session
	err = s.Backend.View(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, BucketSessions, key)
		if err != nil {
			return err
		}
		return json.Unmarshal(it.Value, &ses)
	})
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, ErrNoSession
	}
	if err != nil {
		return "", nil, err
	}
	now := s.Now()
	if s.sessionExpired(&ses, now) {
		s.Delete(ctx, key)
		return "", nil, ErrNoSession
	}
	if now.Sub(ses.LastSeen) >= min(touchEvery, s.IdleTimeout/4) {
		ses.LastSeen = now
		if err := s.put(ctx, BucketSessions, key, &ses, store.Condition{IfMatch: "*"}); err != nil && !errors.Is(err, store.ErrPreconditionFailed) {
			s.Log.WarnContext(ctx, "console: record session use", "error", err)
		}
	}
	return key, &ses, nil
}

func (s *Store) sessionExpired(ses *Session, now time.Time) bool {
	return now.Sub(ses.Created) >= s.MaxAge || now.Sub(ses.LastSeen) >= s.IdleTimeout
}

// Delete ends the session stored under key.
func (s *Store) Delete(ctx context.Context, key string) {
	err := s.Backend.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, BucketSessions, key, store.Condition{}) })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.Log.WarnContext(ctx, "console: delete session", "error", err)
	}
}

// End deletes the session stored under key and its cookie.
func (s *Store) End(ctx context.Context, w http.ResponseWriter, key string) {
	s.Delete(ctx, key)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// Current is who the session signs in now: a policy's rights are read
// again, so a deleted policy or a right taken away ends or narrows its
// console sessions at once.
func (s *Store) Current(ctx context.Context, p principal.Principal) (principal.Principal, error) {
	if p.Kind != principal.KindPolicy {
		return p, nil
	}
	pol, err := s.Policies.Get(ctx, p.Name)
	if errors.Is(err, store.ErrNotFound) {
		return p, ErrNoSession
	}
	if err != nil {
		return p, err
	}
	return policyPrincipal(pol), nil
}

func policyPrincipal(pol *enrollment.SharedAccessPolicy) principal.Principal {
	p := principal.Principal{Kind: principal.KindPolicy, Name: pol.KeyName}
	for _, r := range enrollment.AllRights {
		if pol.HasRight(r) {
			p.Rights = append(p.Rights, r)
		}
	}
	return p
}

// IssueLink stores a one-time sign-in link for p and returns its token
// and when it expires; ErrRandomness when no token could be drawn.
func (s *Store) IssueLink(ctx context.Context, p principal.Principal) (string, time.Time, error) {
	tok, err := newToken()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %w", ErrRandomness, err)
	}
	l := link{Principal: p, Expires: s.Now().Add(s.LinkTTL)}
	if err := s.put(ctx, BucketLinks, tokenKey(tok), &l, store.Condition{IfNoneMatch: true}); err != nil {
		return "", time.Time{}, err
	}
	return tok, l.Expires, nil
}

// UseLink deletes the link in the transaction that reads it (so it works
// once, on any replica) and returns whom it signs in; ErrLinkGone when it
// was used or has expired.
func (s *Store) UseLink(ctx context.Context, tok string) (principal.Principal, error) {
	key := tokenKey(tok)
	var l link
	err := s.Backend.Update(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, BucketLinks, key)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(it.Value, &l); err != nil {
			return err
		}
		return tx.Delete(ctx, BucketLinks, key, store.Condition{IfMatch: it.ETag})
	})
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrPreconditionFailed) || (err == nil && !s.Now().Before(l.Expires)) {
		return principal.Principal{}, ErrLinkGone
	}
	return l.Principal, err
}

// CheckPost refuses a POST whose CSRF token is not the session's, or
// whose Origin (or, without one, Referer) names another site.
func CheckPost(r *http.Request, want string) error {
	if err := SameOrigin(r); err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return errors.New("unreadable form")
	}
	got := r.PostForm.Get("csrf")
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return errors.New("bad CSRF token")
	}
	return nil
}

// SameOrigin checks that a POST comes from a page of this host. Browsers
// send Origin on every form POST; a request with neither Origin nor
// Referer is not from a browser page and still needs the CSRF token.
func SameOrigin(r *http.Request) error {
	o := r.Header.Get("Origin")
	if o == "" {
		o = r.Header.Get("Referer")
	}
	if o == "" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || u.Scheme != "https" || !strings.EqualFold(u.Host, r.Host) {
		return errors.New("cross-origin request")
	}
	return nil
}

// PruneExpired deletes expired sessions and links (sweep.Pruner).
func (s *Store) PruneExpired(ctx context.Context, now time.Time) (int, error) {
	deleted := 0
	for _, b := range []store.Bucket{BucketSessions, BucketLinks} {
		after := ""
		for {
			var items []store.Item
			if err := s.Backend.View(ctx, func(tx store.Tx) error {
				var err error
				items, err = tx.Scan(ctx, b, "", after, 500)
				return err
			}); err != nil {
				return deleted, err
			}
			var dead []store.Item
			for _, it := range items {
				if s.expired(b, it.Value, now) {
					dead = append(dead, it)
				}
			}
			if len(dead) > 0 {
				if err := s.Backend.Update(ctx, func(tx store.Tx) error {
					for _, it := range dead {
						if err := tx.Delete(ctx, b, it.Key, store.Condition{IfMatch: it.ETag}); err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrPreconditionFailed) {
							return err
						}
					}
					return nil
				}); err != nil {
					return deleted, err
				}
				deleted += len(dead)
			}
			if len(items) < 500 {
				break
			}
			after = items[len(items)-1].Key
		}
	}
	return deleted, nil
}

func (s *Store) expired(b store.Bucket, v []byte, now time.Time) bool {
	if b == BucketLinks {
		var l link
		return json.Unmarshal(v, &l) != nil || !now.Before(l.Expires)
	}
	var ses Session
	return json.Unmarshal(v, &ses) != nil || s.sessionExpired(&ses, now)
}
