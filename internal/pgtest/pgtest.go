// Package pgtest gives tests a PostgreSQL schema of their own.
//
// The server comes from $ZDPS_TEST_POSTGRES, a postgres:// URL, by default
// DefaultURL (the PostgreSQL that scripts/test-setup.sh starts for `make
// test`). A test that needs PostgreSQL fails, never skips, when the server
// does not answer: a CI machine whose database is down must not pass
// silently. On a machine without PostgreSQL, opt out with
// ZDPS_TEST_POSTGRES=off; those tests then skip.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	neturl "net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable with the server URL.
const EnvURL = "ZDPS_TEST_POSTGRES"

// DefaultURL is used when EnvURL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// URL returns the server URL, or skips t when the user opted out.
func URL(t testing.TB) string {
	t.Helper()
	u, ok := os.LookupEnv(EnvURL)
	if !ok || u == "" {
		u = DefaultURL
	}
	if strings.EqualFold(u, "off") {
		t.Skip(EnvURL + "=off: PostgreSQL tests disabled")
	}
	return u
}

// Schema returns the server URL and a fresh schema name (the backend
// creates the schema on Open) and drops that schema, with everything in it,
// when the test ends. It fails t when the server does not
// answer.
func Schema(t testing.TB) (url, schema string) {
	t.Helper()
	url = URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("PostgreSQL at %s=%q does not answer (set %s=off to skip these tests): %v", EnvURL, redact(url), EnvURL, err)
	}
	conn.Close(ctx)
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	schema = "zdps_test_" + hex.EncodeToString(rb[:])
	t.Cleanup(func() { Drop(t, url, schema) })
	return url, schema
}

func redact(s string) string {
	u, err := neturl.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Drop removes schema and everything in it.
func Drop(t testing.TB, url, schema string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
		t.Errorf("drop schema %s: %v", schema, err)
	}
}

// StoreURL is url with schema as its "schema" parameter, the form
// `zdps serve --store` and `zdps migrate` take.
func StoreURL(url, schema string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "schema=" + schema
}
