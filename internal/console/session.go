package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/console/sessions"
	"github.com/zdps/zdps/internal/principal"
)

// Buckets of the console (package sessions keeps them).
const (
	BucketSessions = sessions.BucketSessions
	BucketLinks    = sessions.BucketLinks
)

// CookieName is the session cookie (sessions.CookieName).
const CookieName = sessions.CookieName

type sessionKey struct{}

// requireSession admits requests with a valid session, checks CSRF and
// Origin on every POST, and puts the principal in the context.
func (c *Console) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, s, err := c.sessions.Load(r)
		if err == nil {
			s.Principal, err = c.sessions.Current(r.Context(), s.Principal)
		}
		if err != nil {
			if !errors.Is(err, sessions.ErrNoSession) {
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
			if err := sessions.CheckPost(r, s.CSRF); err != nil {
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

// logout ends the session and its cookie.
func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	c.sessions.End(r.Context(), w, sessionFrom(r.Context()).key)
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
	tok, expires, err := c.sessions.IssueLink(ctx, p)
	if errors.Is(err, sessions.ErrRandomness) {
		http.Error(w, "randomness failed", http.StatusInternalServerError)
		return
	}
	if err != nil {
		c.log.ErrorContext(ctx, "console: store link", "error", err)
		http.Error(w, `{"errorCode":503000,"message":"the store did not answer"}`, http.StatusServiceUnavailable)
		return
	}
	c.log.InfoContext(ctx, "console sign-in link issued", "actor", p.Actor(), "expires", expires)
	writeJSON(w, http.StatusOK, &LinkAnswer{URL: "https://" + r.Host + "/console/link/" + tok, Expires: expires, Principal: p.Actor()})
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

// linkConsume uses the link (once, on any replica) and starts a session
// for its principal.
func (c *Console) linkConsume(w http.ResponseWriter, r *http.Request) {
	if err := sessions.SameOrigin(r); err != nil {
		c.fail(w, r, http.StatusForbidden, "This sign-in did not come from the console.")
		return
	}
	ctx := r.Context()
	lp, err := c.sessions.UseLink(ctx, pathParam(r, "token"))
	if errors.Is(err, sessions.ErrLinkGone) {
		c.fail(w, r, http.StatusGone, "This sign-in link has been used or has expired. Ask for a new one with: zdps console link")
		return
	}
	if err != nil {
		c.log.ErrorContext(ctx, "console: use link", "error", err)
		c.fail(w, r, http.StatusServiceUnavailable, "The store did not answer; try again.")
		return
	}
	p, err := c.sessions.Current(ctx, lp)
	if err != nil {
		c.fail(w, r, http.StatusGone, "The access policy of this sign-in link no longer exists.")
		return
	}
	if err := c.sessions.Start(ctx, w, p); err != nil {
		c.log.ErrorContext(ctx, "console: start session", "error", err)
		c.fail(w, r, http.StatusServiceUnavailable, "The store did not answer; try again.")
		return
	}
	http.Redirect(w, r, "/console", http.StatusSeeOther)
}

// sso answers 404 when single sign-on is not configured, and reports
// whether it is.
func (c *Console) sso(w http.ResponseWriter, r *http.Request) bool {
	if c.cfg.SSO == nil {
		c.fail(w, r, http.StatusNotFound, "Single sign-on is not configured.")
		return false
	}
	return true
}

func (c *Console) ssoLogin(w http.ResponseWriter, r *http.Request) {
	if c.sso(w, r) {
		c.cfg.SSO.Begin(w, r)
	}
}

func (c *Console) ssoCallback(w http.ResponseWriter, r *http.Request) {
	if !c.sso(w, r) {
		return
	}
	p, err := c.cfg.SSO.Finish(w, r)
	if err != nil {
		c.log.WarnContext(r.Context(), "console: SSO sign-in refused", "error", err)
		c.fail(w, r, http.StatusUnauthorized, "Single sign-on did not complete. Try again.")
		return
	}
	if err := c.sessions.Start(r.Context(), w, p); err != nil {
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
	return c.sessions.PruneExpired(ctx, now)
}
