package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/internal/principal"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages are the parsed templates, one set per page (the layout and the
// page's content).
type pages map[string]*template.Template

var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		case *time.Time:
			if v == nil || v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05Z")
		}
		return ""
	},
	"join":  strings.Join,
	"split": strings.Fields,
	"svg":   func(s string) template.HTML { return template.HTML(s) }, // drawn by chart.go from numbers only
	"deref": func(p *int) int {
		if p == nil {
			return 0
		}
		return *p
	},
}

func parsePages() (pages, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := pages{}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", n, err)
		}
		p[base] = t
	}
	return p, nil
}

// view is what every page's template gets.
type view struct {
	Title string
	// Nav is the section highlighted in the navigation.
	Nav   string
	Flash string
	// Error is a message about the last action (a conflict, a refusal).
	Error string
	Data  any

	principal *principal.Principal
	csrf      string
}

// Signed reports whether a principal is signed in (the navigation shows).
func (v *view) Signed() bool { return v.principal != nil }

// Who names the signed-in principal.
func (v *view) Who() string {
	if v.principal == nil {
		return ""
	}
	return v.principal.Actor()
}

// Can reports whether the signed-in principal holds right: templates show
// a button only when it does.
func (v *view) Can(right string) bool { return v.principal != nil && v.principal.HasRight(right) }

// CSRF is the session's token for hidden form fields.
func (v *view) CSRF() string { return v.csrf }

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	t, ok := c.pages[page]
	if !ok {
		c.log.ErrorContext(r.Context(), "console: no template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if p, ok := principal.From(r.Context()); ok {
		v.principal = &p
		v.csrf = sessionFrom(r.Context()).csrf
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		c.log.ErrorContext(r.Context(), "console: render", "page", page, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail answers a page with only a message.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "message", &view{Title: http.StatusText(status), Error: msg})
}

func (c *Console) static(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "file")
	b, err := staticFS.ReadFile("static/" + path.Base(name))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	switch path.Ext(name) {
	case ".js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(b)
}

func pathParam(r *http.Request, name string) string { return chi.URLParam(r, name) }
