package cmdutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/zdps/zdps/internal/instance"
)

// EnvTokenFile names the file `zdps login` keeps its token in.
const EnvTokenFile = "ZDPS_TOKEN_FILE"

// Login is what `zdps login` stores (0600): the server it signed in to,
// the issuer's token endpoint and the CLI's client there, and the OAuth
// token with its refresh token.
type Login struct {
	Server   string `json:"server"` // host[:port] of zdps
	Issuer   string `json:"issuer"`
	ClientID string `json:"clientId"`
	TokenURL string `json:"tokenUrl"`
	// RevocationURL is the issuer's RFC 7009 endpoint, where logout
	// revokes the refresh token ("" when it has none).
	RevocationURL string `json:"revocationUrl,omitempty"`
	// IssuerCAFile is a PEM file of CAs trusted for the issuer, besides
	// the system roots ("" for none).
	IssuerCAFile string        `json:"issuerCaFile,omitempty"`
	Token        *oauth2.Token `json:"token"`
}

// TokenFile is where the login is kept: $ZDPS_TOKEN_FILE, else
// zdps/token.json in the user's configuration directory
// ($XDG_CONFIG_HOME, else ~/.config).
func (g *Globals) TokenFile() (string, error) {
	if f := g.Opts.Getenv(EnvTokenFile); f != "" {
		return f, nil
	}
	dir := g.Opts.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := g.Opts.Getenv("HOME")
		if home == "" {
			return "", Errorf(nil, "no place for the sign-in token: set $%s or $HOME", EnvTokenFile)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "zdps", "token.json"), nil
}

// LoadLogin reads the stored login; nil, nil when there is none.
func (g *Globals) LoadLogin() (*Login, string, error) {
	path, err := g.TokenFile()
	if err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, path, nil
	}
	if err != nil {
		return nil, path, Errorf(err, "reading the sign-in token: %v", err)
	}
	var l Login
	if err := json.Unmarshal(b, &l); err != nil || l.Token == nil || l.Server == "" || l.TokenURL == "" {
		return nil, path, Errorf(err, "the sign-in token %s is damaged; run zdps logout, then zdps login", path)
	}
	return &l, path, nil
}

// SaveLogin writes l to path, readable by its owner only.
func SaveLogin(path string, l *Login) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Errorf(err, "storing the sign-in token: %v", err)
	}
	// Readable by its owner only, replaced in one rename so that a
	// reader never sees half a token.
	if err := instance.WriteSecretFile(filepath.Dir(path), filepath.Base(path), append(b, '\n')); err != nil {
		return Errorf(err, "storing the sign-in token: %v", err)
	}
	return nil
}

// IssuerClient is an HTTP client that trusts the system roots and the
// CAs of caFile for the issuer.
func IssuerClient(caFile string) (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, Errorf(err, "issuer CA file: %v", err)
		}
		if !roots.AppendCertsFromPEM(b) {
			return nil, Errorf(nil, "issuer CA file %s holds no PEM certificate", caFile)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// bearerSource returns the stored access token, refreshed at the issuer
// with the refresh token when it expired, and stores a refreshed token
// back in path.
func bearerSource(l *Login, path string) (func(context.Context) (string, error), error) {
	hc, err := IssuerClient(l.IssuerCAFile)
	if err != nil {
		return nil, err
	}
	cfg := oauth2.Config{ClientID: l.ClientID, Endpoint: oauth2.Endpoint{TokenURL: l.TokenURL, AuthStyle: oauth2.AuthStyleInParams}}
	ts := cfg.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, hc), l.Token)
	var mu sync.Mutex
	last := l.Token.AccessToken
	return func(context.Context) (string, error) {
		t, err := ts.Token()
		if err != nil {
			return "", Errorf(err, "the sign-in to %s expired and could not be renewed at %s; run zdps login again (%v)", l.Server, l.Issuer, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if t.AccessToken != last {
			last = t.AccessToken
			renewed := *l
			renewed.Token = t
			if err := SaveLogin(path, &renewed); err != nil {
				return "", err
			}
		}
		return t.AccessToken, nil
	}, nil
}

// explicitConnection reports whether the user named a connection string
// (flag or environment), which wins over a stored sign-in.
func (g *Globals) explicitConnection() bool {
	return g.connectionString != "" || g.Opts.Getenv(EnvConnectionString) != ""
}
