package console

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
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/audit"
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

// session is what the store keeps under the hash of the cookie value.
type session struct {
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

// errNoSession is any reason a request has no valid session; the reason
// is not shown (it would tell an attacker which cookies were ever valid).
var errNoSession = errors.New("console: no valid session")

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

// startSession stores a new session for p and sets its cookie.
func (c *Console) startSession(ctx context.Context, w http.ResponseWriter, p principal.Principal) error {
	tok, err := newToken()
	if err != nil {
		return err
	}
	csrf, err := newToken()
	if err != nil {
		return err
	}
	now := c.now()
	b, err := json.Marshal(&session{Principal: p, CSRF: csrf, Created: now, LastSeen: now})
	if err != nil {
		return err
	}
	if err := c.cfg.Backend.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, BucketSessions, tokenKey(tok), b, store.Condition{IfNoneMatch: true})
		return err
	}); err != nil {
		return fmt.Errorf("console: store session: %w", err)
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: tok, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		MaxAge: int(c.cfg.MaxAge / time.Second),
	})
	c.log.InfoContext(ctx, "console sign-in", "actor", p.Actor())
	return nil
}

// loadSession reads the request's session, ends it when it has expired
// and records its use.
func (c *Console) loadSession(r *http.Request) (string, *session, error) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" || len(ck.Value) > 128 {
		return "", nil, errNoSession
	}
	key := tokenKey(ck.Value)
	ctx := r.Context()
	var s session
	err = c.cfg.Backend.View(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, BucketSessions, key)
		if err != nil {
			return err
		}
		return json.Unmarshal(it.Value, &s)
	})
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, errNoSession
	}
	if err != nil {
		return "", nil, err
	}
	now := c.now()
	if now.Sub(s.Created) >= c.cfg.MaxAge || now.Sub(s.LastSeen) >= c.cfg.IdleTimeout {
		c.deleteSession(ctx, key)
		return "", nil, errNoSession
	}
	if now.Sub(s.LastSeen) >= min(touchEvery, c.cfg.IdleTimeout/4) {
		s.LastSeen = now
		if b, err := json.Marshal(&s); err == nil {
			if err := c.cfg.Backend.Update(ctx, func(tx store.Tx) error {
				_, err := tx.Put(ctx, BucketSessions, key, b, store.Condition{IfMatch: "*"})
				return err
			}); err != nil && !errors.Is(err, store.ErrPreconditionFailed) {
				c.log.WarnContext(ctx, "console: record session use", "error", err)
			}
		}
	}
	return key, &s, nil
}

func (c *Console) deleteSession(ctx context.Context, key string) {
	err := c.cfg.Backend.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, BucketSessions, key, store.Condition{}) })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.log.WarnContext(ctx, "console: delete session", "error", err)
	}
}

// currentPrincipal is who the session signs in now: a policy's rights are
// read again, so a deleted policy or a right taken away ends or narrows
// its console sessions at once.
func (c *Console) currentPrincipal(ctx context.Context, p principal.Principal) (principal.Principal, error) {
	if p.Kind != principal.KindPolicy {
		return p, nil
	}
	pol, err := c.cfg.Store.Policies.Get(ctx, p.Name)
	if errors.Is(err, store.ErrNotFound) {
		return p, errNoSession
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

type sessionKey struct{}

// requireSession admits requests with a valid session, checks CSRF and
// Origin on every POST, and puts the principal in the context.
func (c *Console) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, s, err := c.loadSession(r)
		if err == nil {
			s.Principal, err = c.currentPrincipal(r.Context(), s.Principal)
		}
		if err != nil {
			if !errors.Is(err, errNoSession) {
				c.log.ErrorContext(r.Context(), "console: read session", "error", err)
				c.fail(w, r, http.StatusServiceUnavailable, "The store did not answer; try again.")
				return
			}
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/console/signin?expired=1", http.StatusSeeOther)
				return
			}
			c.fail(w, r, http.StatusUnauthorized, "Your session has ended. Sign in again.")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := c.checkPost(r, s.CSRF); err != nil {
				c.log.WarnContext(r.Context(), "console: refused POST", "reason", err.Error(), "actor", s.Principal.Actor())
				c.fail(w, r, http.StatusForbidden, "This form is out of date or did not come from the console ("+err.Error()+"). Reload the page and try again.")
				return
			}
		}
		ctx := context.WithValue(actorContext(r.Context(), s.Principal), sessionKey{}, sessionRef{key: key, csrf: s.CSRF})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

type sessionRef struct{ key, csrf string }

func sessionFrom(ctx context.Context) sessionRef {
	s, _ := ctx.Value(sessionKey{}).(sessionRef)
	return s
}

// checkPost refuses a POST whose CSRF token is not the session's, or
// whose Origin (or, without one, Referer) names another site.
func (c *Console) checkPost(r *http.Request, want string) error {
	if err := sameOrigin(r); err != nil {
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

// sameOrigin checks that a POST comes from a page of this host. Browsers
// send Origin on every form POST; a request with neither Origin nor
// Referer is not from a browser page and still needs the CSRF token.
func sameOrigin(r *http.Request) error {
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

// logout ends the session and its cookie.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	c.deleteSession(r.Context(), sessionFrom(r.Context()).key)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/console/signin?out=1", http.StatusSeeOther)
}

// LinkAnswer is the answer of POST /console/links.
type LinkAnswer struct {
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
	// Principal names whom the link signs in ("policy:NAME").
	Principal string `json:"principal"`
}

// createLink stores a one-time sign-in link for the caller's policy. The
// service SAS check (Host.Authorize) has run.
func (c *Console) createLink(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, ok := principal.From(ctx)
	if !ok {
		name, isPolicy := strings.CutPrefix(audit.ActorFrom(ctx), principal.KindPolicy+":")
		if !isPolicy || name == "" {
			http.Error(w, "no principal", http.StatusForbidden)
			return
		}
		p = principal.Principal{Kind: principal.KindPolicy, Name: name}
	}
	tok, err := newToken()
	if err != nil {
		http.Error(w, "randomness failed", http.StatusInternalServerError)
		return
	}
	l := link{Principal: p, Expires: c.now().Add(c.cfg.LinkTTL)}
	b, err := json.Marshal(&l)
	if err == nil {
		err = c.cfg.Backend.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Put(ctx, BucketLinks, tokenKey(tok), b, store.Condition{IfNoneMatch: true})
			return err
		})
	}
	if err != nil {
		c.log.ErrorContext(ctx, "console: store link", "error", err)
		http.Error(w, `{"errorCode":503000,"message":"the store did not answer"}`, http.StatusServiceUnavailable)
		return
	}
	c.log.InfoContext(ctx, "console sign-in link issued", "actor", p.Actor(), "expires", l.Expires)
	writeJSON(w, http.StatusOK, &LinkAnswer{URL: "https://" + r.Host + "/console/link/" + tok, Expires: l.Expires, Principal: p.Actor()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// linkPage shows a button that uses the link: a GET never consumes it,
// so a mail scanner or link preview that fetches it does not burn it.
func (c *Console) linkPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "link", &view{Title: "Sign in", Data: map[string]string{"Token": pathParam(r, "token")}})
}

// linkConsume deletes the link in the transaction that reads it (so it
// works once, on any replica) and starts a session for its principal.
func (c *Console) linkConsume(w http.ResponseWriter, r *http.Request) {
	if err := sameOrigin(r); err != nil {
		c.fail(w, r, http.StatusForbidden, "This sign-in did not come from the console.")
		return
	}
	ctx := r.Context()
	key := tokenKey(pathParam(r, "token"))
	var l link
	err := c.cfg.Backend.Update(ctx, func(tx store.Tx) error {
		it, err := tx.Get(ctx, BucketLinks, key)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(it.Value, &l); err != nil {
			return err
		}
		return tx.Delete(ctx, BucketLinks, key, store.Condition{IfMatch: it.ETag})
	})
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrPreconditionFailed) || (err == nil && !c.now().Before(l.Expires)) {
		c.fail(w, r, http.StatusGone, "This sign-in link has been used or has expired. Ask for a new one with: zdps console link")
		return
	}
	if err != nil {
		c.log.ErrorContext(ctx, "console: use link", "error", err)
		c.fail(w, r, http.StatusServiceUnavailable, "The store did not answer; try again.")
		return
	}
	p, err := c.currentPrincipal(ctx, l.Principal)
	if err != nil {
		c.fail(w, r, http.StatusGone, "The access policy of this sign-in link no longer exists.")
		return
	}
	if err := c.startSession(ctx, w, p); err != nil {
		c.log.ErrorContext(ctx, "console: start session", "error", err)
		c.fail(w, r, http.StatusServiceUnavailable, "The store did not answer; try again.")
		return
	}
	http.Redirect(w, r, "/console", http.StatusSeeOther)
}

func (c *Console) ssoLogin(w http.ResponseWriter, r *http.Request) {
	if c.cfg.SSO == nil {
		c.fail(w, r, http.StatusNotFound, "Single sign-on is not configured.")
		return
	}
	c.cfg.SSO.Begin(w, r)
}

func (c *Console) ssoCallback(w http.ResponseWriter, r *http.Request) {
	if c.cfg.SSO == nil {
		c.fail(w, r, http.StatusNotFound, "Single sign-on is not configured.")
		return
	}
	p, err := c.cfg.SSO.Finish(w, r)
	if err != nil {
		c.log.WarnContext(r.Context(), "console: SSO sign-in refused", "error", err)
		c.fail(w, r, http.StatusUnauthorized, "Single sign-on did not complete. Try again.")
		return
	}
	if err := c.startSession(r.Context(), w, p); err != nil {
		c.fail(w, r, http.StatusServiceUnavailable, "The store did not answer; try again.")
		return
	}
	http.Redirect(w, r, "/console", http.StatusSeeOther)
}

func (c *Console) signinPage(w http.ResponseWriter, r *http.Request) {
	msg := ""
	switch {
	case r.URL.Query().Get("expired") != "":
		msg = "Your session has ended or you are not signed in."
	case r.URL.Query().Get("out") != "":
		msg = "You are signed out."
	}
	c.render(w, r, http.StatusOK, "signin", &view{Title: "Sign in", Flash: msg, Data: map[string]bool{"SSO": c.cfg.SSO != nil}})
}

// PruneExpired deletes expired sessions and links (sweep.Pruner).
func (c *Console) PruneExpired(ctx context.Context, now time.Time) (int, error) {
	deleted := 0
	for _, b := range []store.Bucket{BucketSessions, BucketLinks} {
		after := ""
		for {
			var items []store.Item
			if err := c.cfg.Backend.View(ctx, func(tx store.Tx) error {
				var err error
				items, err = tx.Scan(ctx, b, "", after, 500)
				return err
			}); err != nil {
				return deleted, err
			}
			var dead []store.Item
			for _, it := range items {
				if c.expired(b, it.Value, now) {
					dead = append(dead, it)
				}
			}
			if len(dead) > 0 {
				if err := c.cfg.Backend.Update(ctx, func(tx store.Tx) error {
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

func (c *Console) expired(b store.Bucket, v []byte, now time.Time) bool {
	if b == BucketLinks {
		var l link
		return json.Unmarshal(v, &l) != nil || !now.Before(l.Expires)
	}
	var s session
	return json.Unmarshal(v, &s) != nil || now.Sub(s.Created) >= c.cfg.MaxAge || now.Sub(s.LastSeen) >= c.cfg.IdleTimeout
}
