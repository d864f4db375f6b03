package archtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// moduleRoot is the directory of go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// trackedFiles are the repository's files as git knows them (committed or
// staged), else every file under root except dependencies.
func trackedFiles(t *testing.T, root string) []string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		var files []string
		for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f != "" {
				files = append(files, f)
			}
		}
		return files
	}
	var files []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	return files
}

var (
	mdName    = regexp.MustCompile(`\b[A-Za-z0-9_-]+\.md\b`)
	docAnchor = regexp.MustCompile(`docs/(protocol|architecture)\.md#([A-Za-z0-9_-]*)`)
	// In the docs themselves: [text](#anchor) and [text](other.md#anchor).
	localAnchor = regexp.MustCompile(`\]\(((?:protocol|architecture)\.md)?#([A-Za-z0-9_-]*)\)`)
	heading     = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)
)

// slug is the anchor GitHub gives a Markdown heading: lower case, spaces
// to hyphens, punctuation other than - and _ dropped.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(h) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func anchors(md []byte) map[string]bool {
	out := map[string]bool{}
	for _, m := range heading.FindAllSubmatch(md, -1) {
		out[slug(string(m[1]))] = true
	}
	return out
}

// TestDocReferences: the repository explains itself. Every Markdown file a
// file names exists in the repository, and every reference to a section of
// docs/protocol.md or docs/architecture.md, from code, comments, scripts or
// the docs themselves, names a heading that exists.
func TestDocReferences(t *testing.T) {
	root := moduleRoot(t)
	files := trackedFiles(t, root)
	mdFiles := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, ".md") {
			mdFiles[filepath.Base(f)] = true
		}
	}
	docs := map[string]map[string]bool{}
	for _, name := range []string{"protocol", "architecture"} {
		b, err := os.ReadFile(filepath.Join(root, "docs", name+".md"))
		if err != nil {
			t.Fatalf("docs/%s.md: %v", name, err)
		}
		docs[name] = anchors(b)
	}
	for _, f := range files {
		// This package's own files hold patterns and examples, not references.
		if strings.Contains(f, "node_modules/") || strings.HasSuffix(f, ".sum") || strings.HasPrefix(f, "internal/archtest/") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil || bytes.IndexByte(b, 0) >= 0 {
			continue // deleted meanwhile, or binary
		}
		for _, name := range mdName.FindAll(b, -1) {
			if !mdFiles[string(name)] {
				t.Errorf("%s names %s, which is not in the repository", f, name)
			}
		}
		for _, m := range docAnchor.FindAllSubmatch(b, -1) {
			if !docs[string(m[1])][string(m[2])] {
				t.Errorf("%s refers to docs/%s.md#%s: no such heading", f, m[1], m[2])
			}
		}
		if dir, base := filepath.Split(f); dir == "docs/" && strings.HasSuffix(base, ".md") {
			self := strings.TrimSuffix(base, ".md")
			for _, m := range localAnchor.FindAllSubmatch(b, -1) {
				doc := self
				if len(m[1]) > 0 {
					doc = strings.TrimSuffix(string(m[1]), ".md")
				}
				if !docs[doc][string(m[2])] {
					t.Errorf("%s links to %s.md#%s: no such heading", f, doc, m[2])
				}
			}
		}
	}
}

func TestSlug(t *testing.T) {
	for h, want := range map[string]string{
		"Device API over HTTPS":                 "device-api-over-https",
		"X.509 client certificates":             "x509-client-certificates",
		"DeviceRegistration (request body)":     "deviceregistration-request-body",
		"Where zdps goes beyond Azure, and why": "where-zdps-goes-beyond-azure-and-why",
		"`pkg/dps` and the_rest":                "pkgdps-and-the_rest",
	} {
		if got := slug(h); got != want {
			t.Errorf("slug(%q) = %q, want %q", h, got, want)
		}
	}
}
