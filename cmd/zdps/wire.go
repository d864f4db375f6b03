package main

import (
	"context"
	"crypto/x509"
	"log/slog"
	"math/big"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/zdps/zdps/allocation/custom"
	"github.com/zdps/zdps/cmd/zdps/internal/secops"
	"github.com/zdps/zdps/internal/api"
	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/console"
	"github.com/zdps/zdps/internal/deviceapi"
	"github.com/zdps/zdps/internal/gatewayapi"
	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/mqttapi"
	"github.com/zdps/zdps/internal/opsapi"
	"github.com/zdps/zdps/internal/provisioning/tpmatt"
	"github.com/zdps/zdps/internal/revocation"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
)

// rootRouter is every route zdps serves, composed in one place: the
// common middleware (internal/api.NewRouter), then each API's routes.
func rootRouter(service *api.API, dev *deviceapi.API, mq *mqttapi.Server, ops *opsapi.API, cons *console.Console, gw *gatewayapi.API, sso *sso) http.Handler {
	r := service.NewRouter()
	for _, mount := range []func(chi.Router){
		service.Routes, // service API with /healthz, /ca, /ca/bundle and /crl
		dev.Routes,     // device API: /{idScope}/registrations/...
		ops.Routes,     // security operations: /audit, /alerts, /posture, /metrics
		sso.Routes,     // OIDC: GET /auth/oidc for zdps login (none without OIDC)
		cons.Routes,    // operator web console: /console/...
		gw.Routes,      // edge gateways: /sites (service SAS), /gateway/v1/... (gateway client certificate)
	} {
		mount(r)
	}
	// MQTT over WebSockets takes the connection over: it bypasses the
	// router's middleware (body limits, access log of one request).
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == mqttapi.WebSocketPath {
			mq.ServeHTTP(w, req)
			return
		}
		r.ServeHTTP(w, req)
	})
}

// newServiceAPI builds the service API and the parts it serves: the
// management use cases with their write checks, revocation (the returned
// service, whose Run finishes large sweeps) and the CRL publisher signed
// by authority.
//
// The management use cases write through audited (st over an
// audit.Changes backend), so every change they make is an audit event in
// its own transaction; so's detector disables enrollments through them.
func newServiceAPI(cfg serveConfig, st, audited *store.Store, authority *ca.CA, webhooks *custom.Policy, tpmAtt *tpmatt.Attestor, so *secops.Parts, bearer api.BearerVerifier, log *slog.Logger) (*api.API, *revocation.Revocations, error) {
	rev, err := revocation.NewRevocations(st, revocation.RevocationConfig{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	crl, err := revocation.NewCRLPublisher(rev, crlSigner{authority}, crlValidity(cfg))
	if err != nil {
		return nil, nil, err
	}
	mcfg := manage.Config{
		Store: audited, Logger: log,
		CheckWebhookURL: webhooks.CheckURL, CheckTPMEnrollment: tpmAtt.CheckEnrollment,
	}
	if cfg.RevokeOnDisable {
		mcfg.Revocations = rev
	}
	m, err := manage.New(mcfg)
	if err != nil {
		return nil, nil, err
	}
	if err := so.WatchAlerts(st.Backend, m); err != nil {
		return nil, nil, err
	}
	uc := api.UseCasesOf(m)
	cfg.Gateway.WireUseCases(&uc, m) // an edge gateway refuses enrollment writes
	service, err := api.New(api.Config{
		Store:        st,
		HostName:     cfg.HostName,
		Logger:       log,
		MaxBodyBytes: cfg.MaxBodyBytes,
		MaxBulkItems: cfg.MaxBulkItems,
		MaxPageSize:  cfg.MaxPageSize,
		UseCases:     uc,
		Trail:        so.Trail,
		CA:           caView{authority},
		CRL:          crlSources{CRLPublisher: crl, previous: revocation.NewIssuerCRLs(crl), ca: authority},
		Bearer:       bearer,
	})
	return service, rev, err
}

// crlValidity is how far the served CRL's nextUpdate lies.
func crlValidity(cfg serveConfig) time.Duration {
	if cfg.CRLValidity == 0 {
		return ca.DefaultCRLValidity
	}
	return cfg.CRLValidity
}

// crlSigner adapts the CA to the signer the CRL publisher asks for.
type crlSigner struct{ ca *ca.CA }

func (s crlSigner) CRL(entries []revocation.Entry, number *big.Int, nextUpdate time.Duration) ([]byte, error) {
	revoked := make([]ca.Revoked, len(entries))
	for i, e := range entries {
		revoked[i] = ca.Revoked{Serial: e.Serial, RevokedAt: e.RevokedAt, Reason: e.Reason}
	}
	// A CRL is re-signed after a rotation (zdps ca rotate invalidates it):
	// sign with the intermediate now stored, even if the CA's poll has not
	// seen it yet, or a stale signer could publish the next CRL.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = s.ca.Reload(ctx)
	return s.ca.CRL(revoked, number, nextUpdate)
}

// caView is the CA as GET /ca describes it, with its rotation history.
type caView struct{ *ca.CA }

func (v caView) CAHistory(info *dps.CAInfo) {
	info.Generation, info.KeyStore = v.Generation(), v.KMS()
	for _, p := range v.Previous() {
		info.Previous = append(info.Previous, dps.PreviousCAInfo{CACertificateInfo: dps.NewCACertificateInfo(p.Certificate), RotatedAt: p.RotatedAt.UTC(), KeepUntil: p.KeepUntil.UTC()})
	}
	for _, r := range v.PreviousRoots() {
		info.PreviousRoots = append(info.PreviousRoots, dps.PreviousCAInfo{CACertificateInfo: dps.NewCACertificateInfo(r.Certificate), KeepUntil: r.KeepUntil.UTC()})
	}
	for _, c := range v.Cross() {
		info.CrossSigned = append(info.CrossSigned, dps.NewCACertificateInfo(c))
	}
}

// crlSources serves GET /crl (the current intermediate's CRL) and GET
// /crl?issuer= (also the CRLs of intermediates rotated out, until their
// overlap ends).
type crlSources struct {
	*revocation.CRLPublisher
	previous *revocation.IssuerCRLs
	ca       *ca.CA
}

func (s crlSources) IssuerCRL(ctx context.Context, thumbprint string) ([]byte, bool, error) {
	if dps.NewCACertificateInfo(s.ca.Intermediate()).SHA256Thumbprint == thumbprint {
		der, err := s.CRL(ctx)
		return der, true, err
	}
	for _, p := range s.ca.Previous() {
		if dps.NewCACertificateInfo(p.Certificate).SHA256Thumbprint == thumbprint {
			der, err := s.previous.CRL(ctx, thumbprint, previousCRLSigner{s.ca, p.Certificate})
			return der, true, err
		}
	}
	return nil, false, nil
}

type previousCRLSigner struct {
	ca    *ca.CA
	inter *x509.Certificate
}

func (s previousCRLSigner) CRL(entries []revocation.Entry, number *big.Int, nextUpdate time.Duration) ([]byte, error) {
	revoked := make([]ca.Revoked, len(entries))
	for i, e := range entries {
		revoked[i] = ca.Revoked{Serial: e.Serial, RevokedAt: e.RevokedAt, Reason: e.Reason}
	}
	return s.ca.PreviousCRL(s.inter, revoked, number, nextUpdate)
}
