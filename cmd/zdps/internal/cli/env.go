package cli

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/zdps/zdps/pkg/client"
)

// resolvedDataDir: flag, environment, default.
func (g *globals) resolvedDataDir() string {
	switch {
	case g.dataDir != "":
		return g.dataDir
	case g.opts.Getenv(EnvDataDir) != "":
		return g.opts.Getenv(EnvDataDir)
	}
	return DefaultDataDir
}

// connection returns the connection string and where it came from, for
// error messages.
func (g *globals) connection() (client.ConnectionString, error) {
	raw, from := g.connectionString, "--connection-string"
	if raw == "" {
		raw, from = g.opts.Getenv(EnvConnectionString), "$"+EnvConnectionString
	}
	if raw == "" {
		path := filepath.Join(g.resolvedDataDir(), ConnectionStringFile)
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return client.ConnectionString{}, userErrorf(err, "no connection string: pass --connection-string, set %s, or run where the server's data directory is (%s does not exist)", EnvConnectionString, path)
		case err != nil:
			return client.ConnectionString{}, userErrorf(err, "reading the connection string: %v", err)
		}
		raw, from = strings.TrimSpace(string(b)), path
	}
	cs, err := client.ParseConnectionString(raw)
	if err != nil {
		return client.ConnectionString{}, userErrorf(err, "connection string from %s: %v", from, err)
	}
	return cs, nil
}

// rootCAs: --ca-file must exist when given; the data directory's bundle is
// used when present; otherwise nil selects the system roots.
func (g *globals) rootCAs() (*x509.CertPool, error) {
	path, explicit := g.caFile, true
	if path == "" {
		path, explicit = filepath.Join(g.resolvedDataDir(), CABundleFile), false
	}
	b, err := os.ReadFile(path)
	switch {
	case !explicit && errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, userErrorf(err, "CA bundle: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, userErrorf(nil, "CA bundle %s holds no PEM certificate", path)
	}
	return pool, nil
}

// client builds the API client from the global flags.
func (g *globals) client() (*client.Client, error) {
	cs, err := g.connection()
	if err != nil {
		return nil, err
	}
	roots, err := g.rootCAs()
	if err != nil {
		return nil, err
	}
	c, err := client.New(client.Config{ConnectionString: cs.String(), RootCAs: roots, UserAgent: "zdps-cli"})
	if err != nil {
		return nil, userErrorf(err, "%v", err)
	}
	return c, nil
}

func (g *globals) checkOutput() error {
	switch g.output {
	case "table", "json":
		return nil
	}
	return userErrorf(nil, "--output must be table or json, not %q", g.output)
}

// fail translates a client error into one line: what was being done, to
// what, and why, with the sentinel cases phrased for people.
func fail(err error, kind, id, action string) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*userError](err); ok {
		return err
	}
	var apiErr *client.APIError
	isAPI := errors.As(err, &apiErr)
	switch {
	case errors.Is(err, client.ErrNotFound) && isAPI && apiErr.ErrorCode == 404000:
		// zdps answers unknown routes with 404000: not a missing item.
		return userErrorf(err, "%s %s %q: the service does not know this call (is this a zdps server?): %v", action, kind, id, err)
	case errors.Is(err, client.ErrNotFound):
		return userErrorf(err, "%s %q not found", kind, id)
	case errors.Is(err, client.ErrConflict):
		return userErrorf(err, "%s %q already exists", kind, id)
	case errors.Is(err, client.ErrPreconditionFailed):
		return userErrorf(err, "%s %q was changed by someone else (etag mismatch); fetch it again and retry", kind, id)
	case errors.Is(err, client.ErrUnauthorized):
		return userErrorf(err, "%s %s %q: not authorized: %v", action, kind, id, err)
	case isAPI:
		return userErrorf(err, "%s %s %q: %v", action, kind, id, err)
	}
	return userErrorf(err, "%s %s %q: %v", action, kind, id, unwrapTransport(err))
}

// failList is fail for calls on a collection.
func failList(err error, what string) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*userError](err); ok {
		return err
	}
	if errors.Is(err, client.ErrUnauthorized) {
		return userErrorf(err, "list %s: not authorized: %v", what, err)
	}
	if _, ok := errors.AsType[*client.APIError](err); ok {
		return userErrorf(err, "list %s: %v", what, err)
	}
	return userErrorf(err, "list %s: %v", what, unwrapTransport(err))
}

// unwrapTransport words transport errors for the user: an untrusted
// server certificate gets the flag that fixes it.
func unwrapTransport(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "tls: failed to verify certificate"); i >= 0 {
		return msg[i:] + " (pass the server's CA bundle with --ca-file)"
	}
	return msg
}
