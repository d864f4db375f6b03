package cmdutil

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/vbauerster/cupwriter"

	"github.com/zdps/zdps/pkg/client"
)

// Environment variables the CLI reads.
const (
	EnvConnectionString = "ZDPS_CONNECTION_STRING"
	EnvDataDir          = "ZDPS_DATA_DIR"
)

// Files `zdps serve` writes in its data directory.
const (
	ConnectionStringFile = "service-connection-string"
	CABundleFile         = "ca-bundle.pem"
	DefaultDataDir       = "zdps-data"
)

// Options are the process-level inputs of the CLI, injected so that tests
// control them.
type Options struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// StderrIsTerminal decides whether progress bars are drawn; nil means
	// checking the real stderr.
	StderrIsTerminal func() bool
}

// Globals are the flags every management command shares, and the process
// inputs.
type Globals struct {
	Opts             Options
	connectionString string
	dataDir          string
	caFile           string
	output           string
}

// NewGlobals fills the unset options with the process's own.
func NewGlobals(opts Options) *Globals {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Stdin == nil {
		opts.Stdin = os.Stdin
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.StderrIsTerminal == nil {
		opts.StderrIsTerminal = func() bool { return cupwriter.New(os.Stderr, false).IsTerminal() }
	}
	return &Globals{Opts: opts}
}

// RegisterFlags adds the global flags to the root's persistent flags.
func (g *Globals) RegisterFlags(pf *pflag.FlagSet) {
	pf.StringVar(&g.connectionString, "connection-string", "", "service connection string (default $"+EnvConnectionString+", else <data-dir>/"+ConnectionStringFile+")")
	pf.StringVar(&g.dataDir, "data-dir", "", "zdps data directory (default $"+EnvDataDir+", else ./"+DefaultDataDir+")")
	pf.StringVar(&g.caFile, "ca-file", "", "PEM bundle of CAs to trust for the server's certificate (default <data-dir>/"+CABundleFile+" when it exists, else the system roots)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
}

// DataDir: flag, environment, default.
func (g *Globals) DataDir() string {
	switch {
	case g.dataDir != "":
		return g.dataDir
	case g.Opts.Getenv(EnvDataDir) != "":
		return g.Opts.Getenv(EnvDataDir)
	}
	return DefaultDataDir
}

// Connection returns the connection string; its errors say where it came
// from.
func (g *Globals) Connection() (client.ConnectionString, error) {
	raw, from := g.connectionString, "--connection-string"
	if raw == "" {
		raw, from = g.Opts.Getenv(EnvConnectionString), "$"+EnvConnectionString
	}
	if raw == "" {
		path := filepath.Join(g.DataDir(), ConnectionStringFile)
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return client.ConnectionString{}, Errorf(err, "no connection string: pass --connection-string, set %s, or run where the server's data directory is (%s does not exist)", EnvConnectionString, path)
		case err != nil:
			return client.ConnectionString{}, Errorf(err, "reading the connection string: %v", err)
		}
		raw, from = strings.TrimSpace(string(b)), path
	}
	cs, err := client.ParseConnectionString(raw)
	if err != nil {
		return client.ConnectionString{}, Errorf(err, "connection string from %s: %v", from, err)
	}
	return cs, nil
}

// RootCAs: --ca-file must exist when given; the data directory's bundle is
// used when present; otherwise nil selects the system roots.
func (g *Globals) RootCAs() (*x509.CertPool, error) {
	path, explicit := g.caFile, true
	if path == "" {
		path, explicit = filepath.Join(g.DataDir(), CABundleFile), false
	}
	b, err := os.ReadFile(path)
	switch {
	case !explicit && errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, Errorf(err, "CA bundle: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, Errorf(nil, "CA bundle %s holds no PEM certificate", path)
	}
	return pool, nil
}

// Client builds the API client from the global flags. Its credentials,
// first found first: --connection-string, $ZDPS_CONNECTION_STRING, the
// token `zdps login` stored (TokenFile; refreshed when it expired), the
// connection string file of the data directory.
func (g *Globals) Client() (*client.Client, error) {
	roots, err := g.RootCAs()
	if err != nil {
		return nil, err
	}
	if !g.explicitConnection() {
		if _, err := g.TokenFile(); err == nil {
			l, path, err := g.LoadLogin()
			if err != nil {
				return nil, err
			}
			if l != nil {
				src, err := bearerSource(l, path)
				if err != nil {
					return nil, err
				}
				c, err := client.New(client.Config{HostName: l.Server, BearerToken: src, RootCAs: roots, UserAgent: "zdps-cli"})
				if err != nil {
					return nil, Errorf(err, "%v", err)
				}
				return c, nil
			}
		}
	}
	cs, err := g.Connection()
	if err != nil {
		return nil, err
	}
	c, err := client.New(client.Config{ConnectionString: cs.String(), RootCAs: roots, UserAgent: "zdps-cli"})
	if err != nil {
		return nil, Errorf(err, "%v", err)
	}
	return c, nil
}

// CheckOutput refuses an --output other than table or json.
func (g *Globals) CheckOutput() error {
	switch g.output {
	case "table", "json":
		return nil
	}
	return Errorf(nil, "--output must be table or json, not %q", g.output)
}

// Ready checks the global flags and builds the client.
func (g *Globals) Ready() (*client.Client, error) {
	if err := g.CheckOutput(); err != nil {
		return nil, err
	}
	return g.Client()
}

// JSON reports whether -o json was asked for.
func (g *Globals) JSON() bool { return g.output == "json" }

// Printer writes to w in the format of --output.
func (g *Globals) Printer(w io.Writer) Printer { return Printer{W: w, JSON: g.JSON()} }

// ProgressFlag adds --progress, which DrawProgress reads.
func ProgressFlag(f *pflag.FlagSet, v *bool) {
	f.BoolVar(v, "progress", false, "draw a progress bar on stderr even when it is not a terminal (--progress=false: never)")
}

// PageSizeFlag adds --page-size of the list commands that read pages.
func PageSizeFlag(f *pflag.FlagSet, v *int) {
	f.IntVar(v, "page-size", 1000, "items per API call")
}

// DrawProgress: a terminal draws bars; a --progress flag the user gave
// forces either way.
func (g *Globals) DrawProgress(cmd *cobra.Command, flag bool) bool {
	if cmd.Flags().Changed("progress") {
		return flag
	}
	return g.Opts.StderrIsTerminal()
}

// DeviceService resolves the device API's endpoint and the ID scope: flags
// first, then the connection string (its HostName; GET /settings for the
// scope), when one is available.
func (g *Globals) DeviceService(ctx context.Context, endpoint, scope string) (string, string, error) {
	if endpoint != "" && scope != "" {
		return endpoint, scope, nil
	}
	cs, err := g.Connection()
	if err != nil {
		var missing []string
		if endpoint == "" {
			missing = append(missing, "--endpoint")
		}
		if scope == "" {
			missing = append(missing, "--id-scope")
		}
		verb := "are"
		if len(missing) == 1 {
			verb = "is"
		}
		return "", "", Errorf(err, "%s %s required (or a connection string to find the service with: %v)", strings.Join(missing, " and "), verb, err)
	}
	if endpoint == "" {
		endpoint = cs.HostName
	}
	if scope == "" {
		c, err := g.Client()
		if err != nil {
			return "", "", err
		}
		st, err := c.GetSettings(ctx)
		if err != nil {
			return "", "", Errorf(err, "reading the ID scope from %s with the connection string (or pass --id-scope): %s", cs.HostName, UnwrapTransport(err))
		}
		scope = st.IDScope
	}
	return endpoint, scope, nil
}
