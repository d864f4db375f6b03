package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/zdps/zdps/internal/syncio"
)

// KeyType is the key algorithm of a CA that New creates.
type KeyType string

// Key types New can create. P-256 is the default because every device TLS
// stack (mbedTLS, wolfSSL, OpenSSL, Node.js) verifies it and it is fast.
const (
	KeyECP256 KeyType = "EC-P256"
	KeyECP384 KeyType = "EC-P384"
)

// Defaults for the zero values of Config.
const (
	DefaultOrganization         = "zdps"
	DefaultRootValidity         = 20 * 365 * 24 * time.Hour
	DefaultIntermediateValidity = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity         = 365 * 24 * time.Hour
	// MinKEKSize is the shortest KEK accepted: 256 bits, the AES-256 key size.
	MinKEKSize = 32
)

// Config configures New and Import.
type Config struct {
	// Storage keeps the CA state. Required.
	Storage Storage
	// KEK is the key-encryption key, at least MinKEKSize bytes of secret
	// (a random key file, or KEKFromPassphrase). Required. Changing it makes
	// the stored CA unreadable (ErrBadKEK).
	KEK []byte

	// Organization names the CA in its certificates' subjects. Default "zdps".
	Organization string
	// KeyType of the root and intermediate New creates. Default KeyECP256.
	// Ignored when a state exists.
	KeyType KeyType
	// RootValidity and IntermediateValidity apply when New creates the CA.
	RootValidity         time.Duration
	IntermediateValidity time.Duration
	// DefaultLeafValidity applies when LeafPolicy.Validity or a
	// ServerCertificate validity is zero.
	DefaultLeafValidity time.Duration
	// CRLURL, when set, goes into every leaf's CRL distribution point
	// (an absolute http or https URL, the one serving GET /crl).
	CRLURL string

	// KMS, when set, holds the keys outside the store: when New or Create
	// makes a CA, the intermediate's key and zdps's TLS server key are
	// created inside it and the state keeps only sealed references to
	// them. A stored CA whose keys are in a KMS needs the same KMS to load
	// (ErrKMSRequired, ErrKMSMismatch). Nil: keys are sealed in the state.
	KMS KeyStore
	// OfflineRoot makes Create hand the new root's private key to the
	// caller instead of sealing it into the state. New ignores it.
	OfflineRoot bool

	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Rand is the source of serial numbers and AES-GCM nonces. Default
	// crypto/rand.Reader. Key generation and signatures always use the
	// system's secure source: since Go 1.26 the crypto packages ignore a
	// custom reader (use testing/cryptotest.SetGlobalRandom in tests).
	Rand io.Reader
	// Logger receives lifecycle events. Default: discard. Keys are never logged.
	Logger *slog.Logger
}

// KeyStore creates and opens signing keys that live in a KMS (internal/cakms
// adapts go.step.sm/crypto/kms). A reference is what the state keeps; the
// key itself never leaves the KMS.
type KeyStore interface {
	// Type names the KMS ("pkcs11", "tpmkms", ...), for messages and to
	// tell a state's KMS from another.
	Type() string
	// CreateKey creates a signing key of type kt, labelled label, and
	// returns its reference and its signer.
	CreateKey(ctx context.Context, kt KeyType, label string) (ref string, s crypto.Signer, err error)
	// Signer opens a key CreateKey created.
	Signer(ctx context.Context, ref string) (crypto.Signer, error)
}

// withDefaults validates c and fills its zero values.
func (c Config) WithDefaults() (Config, error) {
	if c.Storage == nil {
		return c, fmt.Errorf("%w: Storage is required", ErrInvalidConfig)
	}
	if len(c.KEK) < MinKEKSize {
		return c, fmt.Errorf("%w: KEK must be at least %d bytes, got %d", ErrInvalidConfig, MinKEKSize, len(c.KEK))
	}
	if c.Organization == "" {
		c.Organization = DefaultOrganization
	}
	switch c.KeyType {
	case "":
		c.KeyType = KeyECP256
	case KeyECP256, KeyECP384:
	default:
		return c, fmt.Errorf("%w: unknown KeyType %q", ErrInvalidConfig, c.KeyType)
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
		n   string
	}{
		{&c.RootValidity, DefaultRootValidity, "RootValidity"},
		{&c.IntermediateValidity, DefaultIntermediateValidity, "IntermediateValidity"},
		{&c.DefaultLeafValidity, DefaultLeafValidity, "DefaultLeafValidity"},
	} {
		if *d.v < 0 {
			return c, fmt.Errorf("%w: %s is negative", ErrInvalidConfig, d.n)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.IntermediateValidity > c.RootValidity {
		return c, fmt.Errorf("%w: IntermediateValidity exceeds RootValidity", ErrInvalidConfig)
	}
	if c.CRLURL != "" {
		u, err := url.Parse(c.CRLURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fmt.Errorf("%w: CRLURL %q is not an absolute http(s) URL", ErrInvalidConfig, c.CRLURL)
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	} else {
		// An injected reader (a deterministic one in tests) need not be safe
		// for concurrent use, and SignCSR is called concurrently.
		c.Rand = syncio.Reader(c.Rand)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Argon2id parameters of KEKFromPassphrase: the second recommended option of
// RFC 9106 (64 MiB, 3 passes, 4 lanes), affordable once at start and costly
// for anyone guessing passphrases offline from a stolen store.
const (
	argonTime    = 3
	argonMemory  = 64 * 1024
	argonThreads = 4
	// MinSaltSize is the shortest salt KEKFromPassphrase accepts.
	MinSaltSize = 16
)

// KEKFromPassphrase derives a 32-byte KEK from an operator's passphrase with
// Argon2id. The salt is not secret but must be random (at least MinSaltSize
// bytes, per installation) and stable: a different salt gives a different KEK
// and so ErrBadKEK. Keep it beside the data (for example a file in the data
// directory); keep the passphrase elsewhere.
func KEKFromPassphrase(pass string, salt []byte) ([]byte, error) {
	if pass == "" {
		return nil, fmt.Errorf("%w: empty passphrase", ErrInvalidConfig)
	}
	if len(salt) < MinSaltSize {
		return nil, fmt.Errorf("%w: salt must be at least %d bytes", ErrInvalidConfig, MinSaltSize)
	}
	return argon2.IDKey([]byte(pass), salt, argonTime, argonMemory, argonThreads, 32), nil
}

// Curve is the go.step.sm/crypto/keyutil curve name of a key type.
func (kt KeyType) Curve() string {
	if kt == KeyECP384 {
		return "P-384"
	}
	return "P-256"
}
