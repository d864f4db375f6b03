// Package storespec turns the --store value of `zdps serve` and the
// --from/--to values of `zdps migrate` into an open store.Backend.
//
// Forms:
//
//	""  or "bolt"                  bbolt file zdps.db in the data directory (the default)
//	"bolt:PATH"                    bbolt file PATH, or PATH/zdps.db when PATH is a directory
//	"postgres://..." (postgresql://) PostgreSQL; an optional "schema" query
//	                               parameter names the schema (default "zdps")
package storespec

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/store/postgres"
)

// DBFile is the bbolt file's name in a data directory.
const DBFile = "zdps.db"

// ErrInvalid: the value is none of the accepted forms.
var ErrInvalid = errors.New("store: want bolt, bolt:PATH or postgres://URL")

// Kind of backend a value names.
type Kind int

// Kinds.
const (
	Bolt Kind = iota + 1
	Postgres
)

// Spec is a parsed store value.
type Spec struct {
	Kind Kind
	// Path of the bbolt file (Bolt).
	Path string
	// URL without the schema parameter, and the schema (Postgres).
	URL, Schema string
}

// Parse reads value; dataDir resolves the default bbolt file.
func Parse(value, dataDir string) (Spec, error) {
	switch {
	case value == "" || value == "bolt":
		return Spec{Kind: Bolt, Path: filepath.Join(dataDir, DBFile)}, nil
	case strings.HasPrefix(value, "bolt:"):
		p := strings.TrimPrefix(value, "bolt:")
		if p == "" {
			return Spec{}, fmt.Errorf("%w: bolt: needs a path", ErrInvalid)
		}
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			p = filepath.Join(p, DBFile)
		}
		return Spec{Kind: Bolt, Path: p}, nil
	case strings.HasPrefix(value, "postgres://"), strings.HasPrefix(value, "postgresql://"):
		u, schema, err := postgres.SplitURL(value)
		if err != nil {
			return Spec{}, err
		}
		return Spec{Kind: Postgres, URL: u, Schema: schema}, nil
	}
	return Spec{}, fmt.Errorf("%w, got %q", ErrInvalid, Redact(value))
}

// String describes the store without secrets, for logs and messages.
func (s Spec) String() string {
	if s.Kind == Bolt {
		return "bolt:" + s.Path
	}
	out := Redact(s.URL)
	if s.Schema != "" {
		out += " schema " + s.Schema
	}
	return out
}

// Redact hides the password of a URL.
func Redact(value string) string {
	u, err := url.Parse(value)
	if err != nil || u.User == nil {
		if err != nil {
			return "(unparsable URL)"
		}
		return value
	}
	return u.Redacted()
}

// Options of Open.
type Options struct {
	// CreateBolt allows creating a missing bbolt file (serve, a migration
	// target); otherwise a missing file is an error (a migration source).
	CreateBolt bool
	// Postgres tunes a PostgreSQL backend; Schema is taken from the Spec.
	Postgres postgres.Options
}

// Open opens the backend s names.
func Open(ctx context.Context, s Spec, opts Options) (store.Backend, error) {
	switch s.Kind {
	case Bolt:
		if !opts.CreateBolt {
			if _, err := os.Stat(s.Path); err != nil {
				return nil, fmt.Errorf("bbolt file: %w", err)
			}
		}
		return bolt.Open(s.Path, bolt.Options{})
	case Postgres:
		po := opts.Postgres
		po.Schema = s.Schema
		return postgres.Open(ctx, s.URL, po)
	}
	return nil, ErrInvalid
}
