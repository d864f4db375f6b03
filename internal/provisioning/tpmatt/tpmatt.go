package tpmatt

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zdps/zdps/attestation/tpm"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/sweep"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// Defaults of Config.
const (
	DefaultChallengeTTL = 5 * time.Minute
	DefaultPollWindow   = 15 * time.Minute
	DefaultSkew         = 5 * time.Minute
	DefaultMaxPending   = 4
)

// BucketChallenges holds the pending and recently spent TPM challenges,
// one document per registration ID.
const BucketChallenges store.Bucket = "tpm-challenges"

// Challenges is the collection of TPM challenges on b.
func Challenges(b store.Backend, now func() time.Time) *store.Collection[*Challenge] {
	if now == nil {
		now = time.Now
	}
	return store.NewCollection(b, BucketChallenges, now, func() *Challenge { return new(Challenge) })
}

// Challenge is the stored state of a registration ID's TPM challenges.
type Challenge struct {
	enrollment.Versioned
	RegistrationID string `json:"registrationId"`
	// Keys, oldest first, at most Config.MaxPending.
	Keys []ChallengeKey `json:"keys"`
}

// StoreKey is the registration ID, case-insensitive.
func (c *Challenge) StoreKey() string { return enrollment.Key(c.RegistrationID) }

// Secrets are the issued keys, each bound to its ID, for the store to seal.
func (c *Challenge) Secrets() []enrollment.Secret {
	out := make([]enrollment.Secret, len(c.Keys))
	for i := range c.Keys {
		out[i] = enrollment.Secret{Field: "keys." + c.Keys[i].ID + ".key", Bytes: &c.Keys[i].Key}
	}
	return out
}

// ChallengeKey is one issued HMAC key.
type ChallengeKey struct {
	// ID names the key for Claim (random, not secret).
	ID string `json:"id"`
	// Key is the HMAC-SHA256 key the device's SAS must be signed with.
	// Secret: never logged, never answered; sealed at rest under the KEK
	// like the enrollments' symmetric keys (Challenge.Secrets).
	Key []byte `json:"key"`
	// EK is SHA-256 of the enrolled EK the key was issued for: a changed
	// enrollment voids it.
	EK []byte `json:"ek"`
	// ExpiresAt ends a pending key.
	ExpiresAt time.Time `json:"expiresAt"`
	// SpentAt is set when a registration used the key; polls may use it
	// until SpentAt + PollWindow.
	SpentAt *time.Time `json:"spentAt,omitempty"`
}

// Config configures the attestor. Store is required.
type Config struct {
	Store *store.Store
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Rand is the source of keys and blobs; crypto/rand when nil.
	Rand io.Reader
	// ChallengeTTL is how long a device has to answer a challenge;
	// DefaultChallengeTTL when 0.
	ChallengeTTL time.Duration
	// PollWindow is how long after a registration its SAS still
	// authenticates polls and status lookups; DefaultPollWindow when 0.
	PollWindow time.Duration
	// Skew is the clock-skew allowance on SAS expiry; DefaultSkew when 0.
	Skew time.Duration
	// MaxPending bounds the keys kept per registration ID (the oldest is
	// dropped), so that a stranger who replays a device's public EK and
	// SRK cannot grow the store, nor void the device's challenge with one
	// request; DefaultMaxPending when 0.
	MaxPending int
	// EKRoots are the TPM manufacturer roots EK certificates must chain to.
	// With roots, an EK certificate that a device or its enrollment
	// supplies is checked, and a device whose enrollment (or EKRequired)
	// requires one and has none gets no challenge. Without roots, only
	// enrollments that require a certificate are refused, with a message
	// that names the missing configuration.
	EKRoots *x509.CertPool
	// EKIntermediates help build EK certificate chains.
	EKIntermediates *x509.CertPool
	// EKRequired makes every TPM device present an EK certificate that
	// chains to EKRoots, as if each enrollment required one.
	EKRequired bool
	// EKCertificates finds the EK certificate of a device (DER), nil when
	// it has none; EKCertificate (the payload's, else the enrollment's)
	// when nil.
	EKCertificates func(e *enrollment.IndividualEnrollment, req *port.Request) []byte
}

// Attestor is the TPM port.Attestor. It keeps no state of its own:
// challenges live in the store, so any replica verifies the second round.
type Attestor struct {
	cfg   Config
	st    *store.Store
	chals *store.Collection[*Challenge]
	randM sync.Mutex
}

var _ port.Attestor = (*Attestor)(nil)

// New validates cfg and builds the attestor.
func New(cfg Config) (*Attestor, error) {
	if cfg.Store == nil || cfg.Store.Backend == nil {
		return nil, errors.New("tpmatt: Store is required")
	}
	if cfg.ChallengeTTL < 0 || cfg.PollWindow < 0 || cfg.Skew < 0 || cfg.MaxPending < 0 {
		return nil, errors.New("tpmatt: durations and MaxPending must not be negative")
	}
	if cfg.EKRequired && cfg.EKRoots == nil {
		return nil, errors.New("tpmatt: EKRequired needs EKRoots")
	}
	if cfg.EKCertificates == nil {
		cfg.EKCertificates = EKCertificate
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	cfg.ChallengeTTL = cmp.Or(cfg.ChallengeTTL, DefaultChallengeTTL)
	cfg.PollWindow = cmp.Or(cfg.PollWindow, DefaultPollWindow)
	cfg.Skew = cmp.Or(cfg.Skew, DefaultSkew)
	cfg.MaxPending = cmp.Or(cfg.MaxPending, DefaultMaxPending)
	return &Attestor{cfg: cfg, st: cfg.Store, chals: Challenges(cfg.Store.Backend, cfg.Now).Sealed(cfg.Store.Sealer())}, nil
}

func refuse(reason string) error {
	return port.Refuse(reason, fmt.Errorf("%w: %s", port.ErrUnauthorized, reason))
}

// Attest runs either round: without Authorization it issues a challenge
// (a *port.TPMChallenge error), with one it verifies the SAS
// against the registration ID's challenges.
func (a *Attestor) Attest(ctx context.Context, req *port.Request) (*port.Identity, error) {
	var ek, srk *tpm.Public
	if req.TPM != nil && req.TPM.EndorsementKey != "" {
		var err error
		if ek, err = parseKey(req.TPM.EndorsementKey, tpm.ParseEK, "endorsementKey"); err != nil {
			return nil, err
		}
		if req.TPM.StorageRootKey != "" {
			if srk, err = parseKey(req.TPM.StorageRootKey, tpm.ParseSRK, "storageRootKey"); err != nil {
				return nil, err
			}
		}
	}
	e, err := a.st.Enrollments.Get(ctx, req.RegistrationID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, refuse("no individual enrollment")
	case err != nil:
		return nil, fmt.Errorf("tpmatt: read enrollment: %w", err)
	case e.Attestation == nil || e.Attestation.Type != enrollment.AttestationTPM || e.Attestation.TPM == nil:
		return nil, refuse("the enrollment does not use TPM attestation")
	}
	enrolled, err := enrolledEK(e)
	if err != nil {
		return nil, refuse("the enrollment's endorsement key is not a valid EK")
	}
	if ek != nil && !ek.Equal(enrolled) {
		return nil, refuse("endorsement key differs from the enrollment's")
	}
	if req.Authorization == "" {
		return nil, a.challenge(ctx, req, e, enrolled, srk)
	}
	return a.verify(ctx, req, e, enrolled, srk)
}

// parseKey decodes and parses a base64 TPM2B_PUBLIC of the body; a bad one
// is a bad request (400), named without quoting it.
func parseKey(b64 string, parse func([]byte) (*tpm.Public, error), field string) (*tpm.Public, error) {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, port.Refuse("tpm key is not base64", fmt.Errorf("%w: tpm.%s is not base64", port.ErrInvalid, field))
	}
	p, err := parse(raw)
	if err != nil {
		return nil, port.Refuse("tpm key refused", fmt.Errorf("%w: tpm.%s: %w", port.ErrInvalid, field, err))
	}
	return p, nil
}

// enrolledEK parses the enrollment's EK: base64 of a TPM2B_PUBLIC, or of
// a bare TPMT_PUBLIC (some tools print that).
func enrolledEK(e *enrollment.IndividualEnrollment) (*tpm.Public, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Attestation.TPM.EndorsementKey))
	if err != nil {
		return nil, err
	}
	if p, err := tpm.ParseEK(raw); err == nil {
		return p, nil
	}
	if len(raw) > tpm.MaxPublicSize {
		return nil, tpm.ErrMalformed
	}
	with := append([]byte{byte(len(raw) >> 8), byte(len(raw))}, raw...)
	return tpm.ParseEK(with)
}

func ekDigest(ek *tpm.Public) []byte {
	d := sha256.Sum256(ek.Raw)
	return d[:]
}

func (a *Attestor) random(n int) ([]byte, error) {
	b := make([]byte, n)
	a.randM.Lock()
	defer a.randM.Unlock()
	if _, err := io.ReadFull(a.cfg.Rand, b); err != nil {
		return nil, fmt.Errorf("tpmatt: random: %w", err)
	}
	return b, nil
}

func (a *Attestor) blob(ek, srk *tpm.Public, key []byte) (string, error) {
	a.randM.Lock()
	defer a.randM.Unlock()
	b, err := tpm.MakeActivationBlob(a.cfg.Rand, ek, srk, key)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// challenge issues a key for the first round and stores it.
func (a *Attestor) challenge(ctx context.Context, req *port.Request, e *enrollment.IndividualEnrollment, ek, srk *tpm.Public) error {
	if srk == nil {
		return port.Refuse("tpm key refused", fmt.Errorf("%w: tpm.endorsementKey and tpm.storageRootKey are required", port.ErrInvalid))
	}
	if err := a.checkEKCertificate(e, req, ek); err != nil {
		return err
	}
	key, err := a.random(tpm.KeySize)
	if err != nil {
		return err
	}
	defer clear(key)
	idb, err := a.random(16)
	if err != nil {
		return err
	}
	blob, err := a.blob(ek, srk, key)
	if err != nil {
		return err
	}
	now := a.cfg.Now().UTC()
	nk := ChallengeKey{ID: hex.EncodeToString(idb), Key: bytes.Clone(key), EK: ekDigest(ek), ExpiresAt: now.Add(a.cfg.ChallengeTTL)}
	err = a.st.Backend.Update(ctx, func(tx store.Tx) error {
		col := a.chals.In(tx)
		c, err := col.Get(ctx, req.RegistrationID)
		cond := store.Condition{IfNoneMatch: true}
		switch {
		case errors.Is(err, store.ErrNotFound):
			c = &Challenge{RegistrationID: req.RegistrationID}
		case err != nil:
			return err
		default:
			cond = store.Condition{IfMatch: c.ETag}
		}
		keys := []ChallengeKey{}
		for _, k := range c.Keys {
			if a.usable(k, now) {
				keys = append(keys, k)
			}
		}
		keys = append(keys, nk)
		if n := len(keys) - a.cfg.MaxPending; n > 0 {
			keys = keys[n:]
		}
		c.Keys = keys
		_, err = col.Put(ctx, c, cond)
		return err
	})
	if err != nil {
		return fmt.Errorf("tpmatt: store challenge: %w", err)
	}
	return port.Refuse("TPM challenge issued", &port.TPMChallenge{AuthenticationKey: blob})
}

// usable: a pending key until it expires, a spent one for the poll window.
func (a *Attestor) usable(k ChallengeKey, now time.Time) bool {
	if k.SpentAt != nil {
		return now.Before(k.SpentAt.Add(a.cfg.PollWindow))
	}
	return now.Before(k.ExpiresAt)
}

// verify checks the SAS of the second round (or of a poll) against the
// registration ID's usable keys.
func (a *Attestor) verify(ctx context.Context, req *port.Request, e *enrollment.IndividualEnrollment, ek, srk *tpm.Public) (*port.Identity, error) {
	tok, err := sas.Parse(req.Authorization)
	if err != nil {
		return nil, refuse("malformed SAS token")
	}
	res, err := tok.DecodedResource()
	if err != nil {
		return nil, refuse("malformed SAS token")
	}
	if !strings.EqualFold(res, dps.RegistrationResource(req.IDScope, req.RegistrationID)) {
		return nil, refuse("SAS token is for another resource")
	}
	now := a.cfg.Now().UTC()
	if err := tok.CheckExpiry(now, a.cfg.Skew); err != nil {
		return nil, refuse("SAS token expired")
	}
	c, err := a.chals.Get(ctx, req.RegistrationID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, refuse("no TPM challenge pending")
	case err != nil:
		return nil, fmt.Errorf("tpmatt: read challenge: %w", err)
	}
	digest := ekDigest(ek)
	var match *ChallengeKey
	for i := range c.Keys {
		k := &c.Keys[i]
		// Every usable key is tried, so the time taken does not say which
		// matched; each comparison is constant-time.
		if a.usable(*k, now) && bytes.Equal(k.EK, digest) && tok.VerifySignature(k.Key) == nil && match == nil {
			match = k
		}
	}
	if match == nil {
		return nil, refuse("SAS signature does not match a usable TPM challenge")
	}
	proof := &port.TPMProof{Spent: match.SpentAt != nil, ClaimFunc: a.claim(req.RegistrationID, match.ID)}
	if srk != nil && !proof.Spent {
		key, err := a.random(tpm.KeySize)
		if err != nil {
			return nil, err
		}
		defer clear(key)
		if proof.AuthenticationKey, err = a.blob(ek, srk, key); err != nil {
			return nil, err
		}
	}
	return &port.Identity{
		Type:           enrollment.AttestationTPM,
		RegistrationID: req.RegistrationID,
		Enrollment:     e,
		Evidence:       proof,
	}, nil
}

// claim marks key id spent inside the pipeline's transaction; a key that is
// gone, spent or expired by then refuses the registration.
func (a *Attestor) claim(regID, id string) func(ctx context.Context, tx store.Tx) error {
	return func(ctx context.Context, tx store.Tx) error {
		col := a.chals.In(tx)
		c, err := col.Get(ctx, regID)
		if errors.Is(err, store.ErrNotFound) {
			return refuse("TPM challenge already used")
		}
		if err != nil {
			return err
		}
		now := a.cfg.Now().UTC()
		for i := range c.Keys {
			k := &c.Keys[i]
			if k.ID != id {
				continue
			}
			if k.SpentAt != nil || !now.Before(k.ExpiresAt) {
				return refuse("TPM challenge already used")
			}
			k.SpentAt = &now
			_, err := col.Put(ctx, c, store.Condition{IfMatch: c.ETag})
			return err
		}
		return refuse("TPM challenge already used")
	}
}

// checkEKCertificate refuses a device whose EK certificate does not chain
// to the manufacturer roots, when one is required or supplied.
func (a *Attestor) checkEKCertificate(e *enrollment.IndividualEnrollment, req *port.Request, ek *tpm.Public) error {
	required := a.cfg.EKRequired || (e.Attestation != nil && e.Attestation.TPM != nil && e.Attestation.TPM.RequireEndorsementKeyCertificate)
	der := a.cfg.EKCertificates(e, req)
	switch {
	case !required && (der == nil || a.cfg.EKRoots == nil):
		return nil // nothing to check, or nothing to check it against
	case a.cfg.EKRoots == nil:
		return port.Refuse("EK certificate required and no manufacturer roots configured (zdps serve --tpm-ek-roots)", fmt.Errorf("%w: the enrollment requires an EK certificate and zdps has no TPM manufacturer roots (zdps serve --tpm-ek-roots)", port.ErrUnauthorized))
	}
	if err := tpm.VerifyEKCertificate(der, ek, tpm.EKVerifyOptions{Roots: a.cfg.EKRoots, Intermediates: a.cfg.EKIntermediates, Now: a.cfg.Now()}); err != nil {
		return refuse("EK certificate refused")
	}
	return nil
}

// CheckEnrollment is the service API's write-time check of a TPM
// enrollment's EK certificate: it must certify the enrollment's EK and,
// when manufacturer roots are configured, chain to them. Enrollments
// without one pass.
func (a *Attestor) CheckEnrollment(e *enrollment.IndividualEnrollment) error {
	if e == nil || e.Attestation == nil || e.Attestation.TPM == nil || e.Attestation.TPM.EndorsementKeyCertificate == "" {
		return nil
	}
	const field = "attestation.tpm.endorsementKeyCertificate"
	ek, err := enrolledEK(e)
	if err != nil {
		return &enrollment.ValidationError{Field: "attestation.tpm.endorsementKey", Reason: "is not a TPM 2.0 RSA 2048 endorsement key (base64 TPM2B_PUBLIC)"}
	}
	der, err := enrollment.CertificateDER(e.Attestation.TPM.EndorsementKeyCertificate)
	if err != nil {
		return &enrollment.ValidationError{Field: field, Reason: err.Error()}
	}
	if a.cfg.EKRoots != nil {
		err = tpm.VerifyEKCertificate(der, ek, tpm.EKVerifyOptions{Roots: a.cfg.EKRoots, Intermediates: a.cfg.EKIntermediates, Now: a.cfg.Now()})
	} else {
		err = tpm.CheckEKCertificate(der, ek)
	}
	if err != nil {
		return &enrollment.ValidationError{Field: field, Reason: err.Error()}
	}
	return nil
}

// EKCertificate is the default EKCertificates: the device's own, from the
// registration payload (FromPayload), else the one its enrollment
// recorded, else nil.
func EKCertificate(e *enrollment.IndividualEnrollment, req *port.Request) []byte {
	if der := FromPayload(e, req); der != nil {
		return der
	}
	if e == nil || e.Attestation == nil || e.Attestation.TPM == nil || e.Attestation.TPM.EndorsementKeyCertificate == "" {
		return nil
	}
	der, err := enrollment.CertificateDER(e.Attestation.TPM.EndorsementKeyCertificate)
	if err != nil {
		return nil
	}
	return der
}

// FromPayload is an EKCertificates that reads the DER EK certificate from
// the registration payload's "tpmEkCertificate" (base64), the way a device
// (for example the Go SDK with Config.TPMEKCertificate) sends it. The
// default, EKCertificate, falls back to the enrollment's.
func FromPayload(_ *enrollment.IndividualEnrollment, req *port.Request) []byte {
	return tpm.EKCertificateFromPayload(req.Payload)
}

// PruneExpired deletes the challenge documents none of whose keys is
// usable at now (every pending key expired, every spent one past its poll
// window), so that neither the documents nor their HMAC keys outlive their
// use for devices that never come back, and returns how many it deleted.
// A document with a usable key is kept whole; the next challenge issued
// for its registration ID drops its unusable keys. Safe on several
// replicas at once (see sweep.Batch for the batch size).
func (a *Attestor) PruneExpired(ctx context.Context, now time.Time) (int, error) {
	n, err := sweep.Documents(ctx, a.st.Backend, a.chals, BucketChallenges, sweep.Batch,
		func(c *Challenge) bool { return !a.anyUsable(c, now) }, nil)
	if err != nil {
		return n, fmt.Errorf("tpmatt: prune challenges: %w", err)
	}
	return n, nil
}

func (a *Attestor) anyUsable(c *Challenge, now time.Time) bool {
	return slices.ContainsFunc(c.Keys, func(k ChallengeKey) bool { return a.usable(k, now) })
}
