package logincmd

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/spf13/cobra"
	"golang.org/x/oauth2"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/dps"
)

// NewLoginCmd is `zdps login`.
func NewLoginCmd(g *cmdutil.Globals) *cobra.Command {
	var server, issuerCA string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Sign in through the server's OIDC provider (device code) and keep the token for the other commands",
		Long: `Sign in to a zdps server through its OpenID Connect provider with the device
authorization grant: zdps login prints a URL and a code, you open the URL in any
browser, sign in and enter the code. The access token and its refresh token are
kept in $` + cmdutil.EnvTokenFile + ` (default ~/.config/zdps/token.json, mode 0600);
the other commands use it, renewing it when it expires, unless a connection
string is given (--connection-string or $` + cmdutil.EnvConnectionString + `), which wins.
The server tells where to sign in (GET ` + dps.OIDCConfigPath + `); it needs --oidc-issuer,
--oidc-audience and --oidc-cli-client-id.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return login(cmd.Context(), g, server, issuerCA)
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "host[:port] of the zdps server (default: the host of the connection string, if any)")
	cmd.Flags().StringVar(&issuerCA, "issuer-ca-file", "", "PEM CAs to trust for the OIDC provider besides the system roots")
	return cmd
}

// NewLogoutCmd is `zdps logout`.
func NewLogoutCmd(g *cmdutil.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget the token zdps login stored",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := g.TokenFile()
			if err != nil {
				return err
			}
			l, _, lerr := g.LoadLogin()
			if lerr == nil && l != nil {
				if err := revoke(cmd.Context(), l); err != nil {
					fmt.Fprintf(g.Opts.Stderr, "warning: the provider did not revoke the refresh token (%v); the token file is removed anyway.\n", err)
				}
			}
			if err := os.Remove(path); errors.Is(err, os.ErrNotExist) {
				fmt.Fprintln(g.Opts.Stderr, "Not signed in.")
				return nil
			} else if err != nil {
				return cmdutil.Errorf(err, "removing %s: %v", path, err)
			}
			if lerr == nil && l != nil {
				fmt.Fprintf(g.Opts.Stderr, "Signed out of %s (removed %s).\n", l.Server, path)
			} else {
				fmt.Fprintf(g.Opts.Stderr, "Removed %s.\n", path)
			}
			return nil
		},
	}
}

func login(ctx context.Context, g *cmdutil.Globals, server, issuerCA string) error {
	if server == "" {
		cs, err := g.Connection()
		if err != nil {
			return cmdutil.Errorf(err, "--server is required (or a connection string naming the server: %v)", err)
		}
		server = cs.HostName
	}
	path, err := g.TokenFile()
	if err != nil {
		return err
	}
	info, err := serverOIDC(ctx, g, server)
	if err != nil {
		return err
	}
	if issuerCA != "" {
		if issuerCA, err = filepath.Abs(issuerCA); err != nil {
			return cmdutil.Errorf(err, "--issuer-ca-file: %v", err)
		}
	}
	hc, err := cmdutil.IssuerClient(issuerCA)
	if err != nil {
		return err
	}
	ictx := oidc.ClientContext(ctx, hc)
	p, err := oidc.NewProvider(ictx, info.Issuer)
	if err != nil {
		return cmdutil.Errorf(err, "the server's OIDC provider %s does not answer discovery (is it reachable and its certificate trusted? --issuer-ca-file adds CAs): %v", info.Issuer, err)
	}
	ep := p.Endpoint()
	if ep.DeviceAuthURL == "" {
		return cmdutil.Errorf(nil, "the OIDC provider %s offers no device authorization endpoint; enable the device grant for client %s", info.Issuer, info.ClientID)
	}
	ep.AuthStyle = oauth2.AuthStyleInParams // a public client: client_id in the form, no secret
	cfg := oauth2.Config{ClientID: info.ClientID, Endpoint: ep, Scopes: info.Scopes}
	var opts []oauth2.AuthCodeOption
	if info.Audience != "" {
		// Providers that issue tokens per API (Auth0) read it; others ignore it.
		opts = append(opts, oauth2.SetAuthURLParam("audience", info.Audience))
	}
	da, err := cfg.DeviceAuth(ictx, opts...)
	if err != nil {
		return cmdutil.Errorf(err, "the OIDC provider refused to start a device sign-in for client %s: %s", info.ClientID, oauthReason(err))
	}
	where := da.VerificationURI
	if da.VerificationURIComplete != "" {
		where = da.VerificationURIComplete
	}
	fmt.Fprintf(g.Opts.Stderr, "To sign in to %s, open %s in a browser and enter the code %s\n", server, where, da.UserCode)
	if !da.Expiry.IsZero() {
		fmt.Fprintf(g.Opts.Stderr, "Waiting for you to approve it (the code expires in %s)...\n", time.Until(da.Expiry).Round(time.Second))
	}
	tok, err := cfg.DeviceAccessToken(ictx, da)
	if err != nil {
		return cmdutil.Errorf(err, "sign-in failed: %s", oauthReason(err))
	}
	var meta struct {
		Revocation string `json:"revocation_endpoint"`
	}
	_ = p.Claims(&meta)
	if err := cmdutil.SaveLogin(path, &cmdutil.Login{
		Server: server, Issuer: info.Issuer, ClientID: info.ClientID, TokenURL: ep.TokenURL, RevocationURL: meta.Revocation,
		IssuerCAFile: issuerCA, Token: tok,
	}); err != nil {
		return err
	}
	fmt.Fprintf(g.Opts.Stderr, "Signed in to %s as %s; the token is kept in %s.\n", server, who(tok.AccessToken), path)
	return nil
}

// revoke asks the provider to revoke the login's refresh token (RFC
// 7009), so that a copy of the token file is worth nothing either.
func revoke(ctx context.Context, l *cmdutil.Login) error {
	if l.RevocationURL == "" || l.Token == nil || l.Token.RefreshToken == "" {
		return nil
	}
	hc, err := cmdutil.IssuerClient(l.IssuerCAFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	form := url.Values{"token": {l.Token.RefreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {l.ClientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.RevocationURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", l.RevocationURL, resp.Status)
	}
	return nil
}

// serverOIDC asks the server where to sign in.
func serverOIDC(ctx context.Context, g *cmdutil.Globals, server string) (*dps.OIDCConfig, error) {
	roots, err := g.RootCAs()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+server+dps.OIDCConfigPath, nil)
	if err != nil {
		return nil, cmdutil.Errorf(err, "--server %q: %v", server, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, cmdutil.Errorf(err, "reaching %s: %v", server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, cmdutil.Errorf(nil, "the server %s has no single sign-on configured (zdps serve --oidc-issuer ...); use a connection string", server)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, cmdutil.Errorf(nil, "GET %s on %s answered %s", dps.OIDCConfigPath, server, resp.Status)
	}
	var info dps.OIDCConfig
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&info); err != nil || info.Issuer == "" {
		return nil, cmdutil.Errorf(err, "the server %s answered GET %s with no issuer", server, dps.OIDCConfigPath)
	}
	if info.ClientID == "" {
		return nil, cmdutil.Errorf(nil, "the server %s names no client for the CLI (zdps serve --oidc-cli-client-id)", server)
	}
	return &info, nil
}

// oauthReason is the provider's error code and description, when it gave
// them.
func oauthReason(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode != "" {
		switch re.ErrorCode {
		case "access_denied":
			return "the sign-in was denied at the provider"
		case "expired_token":
			return "the code expired before it was approved; run zdps login again"
		}
		return strings.TrimSpace(re.ErrorCode + " " + re.ErrorDescription)
	}
	return err.Error()
}

// who names the signed-in user from the access token's claims, for the
// message only: the server verifies the token, the CLI does not need to.
func who(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var c struct{ Email, Sub string }
			if json.Unmarshal(b, &c) == nil {
				if c.Email != "" {
					return c.Email
				}
				if c.Sub != "" {
					return c.Sub
				}
			}
		}
	}
	return "the signed-in user"
}
