package pathcase

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"
)

// Literals are the fixed path segments of every route a router serves,
// by their lower-case form.
type Literals map[string]string

// New lists the fixed segments of the routes, in their canonical
// spelling.
func New(segments ...string) Literals {
	l := Literals{}
	for _, s := range segments {
		l[strings.ToLower(s)] = s
	}
	return l
}

// Middleware routes on the decoded path with its literal segments in
// canonical case and without a trailing slash. An ID segment that happens
// to equal a literal is rewritten too; that is harmless because IDs are
// case-insensitive.
func (l Literals) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rctx := chi.RouteContext(r.Context()); rctx != nil {
			p, ok := l.Canonical(r.URL.EscapedPath())
			if !ok {
				// Not an error page of our own: an undecodable path or an
				// ID with a slash matches no route.
				p = "/\x00invalid"
			}
			rctx.RoutePath = p
		}
		next.ServeHTTP(w, r)
	})
}

// Canonical is the path to route escaped on, and false when it cannot
// match a route: a segment does not decode or decodes to one with a
// slash.
func (l Literals) Canonical(escaped string) (string, bool) {
	segs := strings.Split(escaped, "/")
	for i, s := range segs {
		d, err := url.PathUnescape(s)
		if err != nil || strings.Contains(d, "/") {
			return "", false
		}
		if c, ok := l[strings.ToLower(d)]; ok {
			d = c
		}
		segs[i] = d
	}
	p := strings.Join(segs, "/")
	if len(p) > 1 {
		p = strings.TrimRight(p, "/")
	}
	if p == "" {
		p = "/"
	}
	return p, true
}
