package cakms

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"go.step.sm/crypto/kms/apiv1"
	"go.step.sm/crypto/kms/uri"

	"github.com/zdps/zdps/internal/ca"
)

// Sentinel errors.
var (
	// ErrNotBuilt: the URI names a KMS type this binary was built without.
	ErrNotBuilt = errors.New("cakms: KMS type not built into this zdps")
	// ErrInvalidURI: the URI is not a KMS URI zdps can use.
	ErrInvalidURI = errors.New("cakms: invalid KMS URI")
	// ErrCreateUnsupported: zdps cannot create keys in this KMS type.
	ErrCreateUnsupported = errors.New("cakms: creating CA keys in this KMS type is not supported")
)

// buildHint says how to get a binary with a backend it lacks.
var buildHint = map[apiv1.Type]string{
	apiv1.PKCS11:    "build with the pkcs11 tag (make build, or CGO_ENABLED=1 go build -tags pkcs11 ./cmd/zdps: it needs cgo)",
	apiv1.AzureKMS:  cloudHint("azurekms"),
	apiv1.AmazonKMS: cloudHint("awskms"),
	apiv1.CloudKMS:  cloudHint("cloudkms"),
	apiv1.TPMKMS:    "it is built unless the notpmkms tag is set",
}

// cloudHint: the cloud KMSes are pure Go but left out of the default
// binary for their SDKs' size.
func cloudHint(tag string) string {
	return fmt.Sprintf("build with the %s tag: make build TAGS='pkcs11 %s', or go build -tags %s ./cmd/zdps; README, CA keys in an HSM, a KMS or a TPM", tag, tag, tag)
}

// Options tune Open.
type Options struct {
	// TPMStorageDir is where tpmkms keeps its key blobs (each wrapped by
	// the TPM, useless without it) when the URI gives no
	// storage-directory. Required for tpmkms URIs without one.
	TPMStorageDir string
}

// Keys is an open KMS. It implements ca.KeyStore; Close releases it.
type Keys struct {
	km  apiv1.KeyManager
	typ apiv1.Type
	uri string // as opened: CreateKey takes Azure's vault, Google's key ring from it
}

var _ ca.KeyStore = (*Keys)(nil)

// Open connects to the KMS rawURI names, for example
//
//	pkcs11:module-path=/usr/lib/softhsm/libsofthsm2.so;token=zdps?pin-value=1234
//	tpmkms:device=/dev/tpmrm0;storage-directory=/var/lib/zdps/tpm
//	azurekms:vault=zdps-ca              (azurekms tag)
//	awskms:region=eu-west-1             (awskms tag)
//	cloudkms:key-ring=projects/p/locations/europe-west1/keyRings/zdps  (cloudkms tag)
func Open(ctx context.Context, rawURI string, o Options) (*Keys, error) {
	scheme, _, ok := strings.Cut(rawURI, ":")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("%w: %q has no scheme (pkcs11:, tpmkms:, azurekms:, awskms:, cloudkms:)", ErrInvalidURI, redact(rawURI))
	}
	// The SDK's parse errors quote the whole URI, and a URI may carry a
	// secret (pin-value, Azure's client-secret): parse it here first.
	if _, err := uri.Parse(rawURI); err != nil {
		return nil, fmt.Errorf("%w: %s: the URI does not parse (key=value pairs separated by ;, %%-escaped)", ErrInvalidURI, scheme)
	}
	typ, err := apiv1.TypeOf(rawURI)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidURI, scheme, err)
	}
	switch typ {
	case apiv1.DefaultKMS, apiv1.SoftKMS:
		return nil, fmt.Errorf("%w: softkms is the default (keys sealed in the store): give no KMS URI for it", ErrInvalidURI)
	}
	if _, ok := apiv1.LoadKeyManagerNewFunc(typ); !ok {
		hint := buildHint[typ]
		if hint == "" {
			hint = "zdps does not offer it"
		}
		return nil, fmt.Errorf("%w: %s (%s)", ErrNotBuilt, typ, hint)
	}
	opts := apiv1.Options{Type: typ, URI: rawURI}
	if typ == apiv1.TPMKMS {
		if o.TPMStorageDir == "" && !strings.Contains(rawURI, "storage-directory=") {
			return nil, fmt.Errorf("%w: tpmkms needs a storage-directory", ErrInvalidURI)
		}
		opts.StorageDirectory = o.TPMStorageDir
	}
	fn, _ := apiv1.LoadKeyManagerNewFunc(typ)
	km, err := fn(ctx, opts)
	if err != nil {
		// The URI may carry a PIN: never echo it.
		return nil, fmt.Errorf("cakms: open %s: %w", typ, err)
	}
	return &Keys{km: km, typ: typ, uri: rawURI}, nil
}

// Type is the KMS type, "pkcs11", "tpmkms", ...
func (k *Keys) Type() string { return string(k.typ) }

// CreateKey creates a non-extractable signing key inside the KMS and returns
// its reference (a key URI without secrets) and signer.
func (k *Keys) CreateKey(_ context.Context, kt ca.KeyType, label string) (string, crypto.Signer, error) {
	alg := apiv1.ECDSAWithSHA256
	if kt == ca.KeyECP384 {
		alg = apiv1.ECDSAWithSHA384
	}
	suffix := make([]byte, 8)
	if _, err := rand.Read(suffix); err != nil {
		return "", nil, err
	}
	// A random part keeps a second CA (a rotation, a re-init after a
	// failed one) from colliding with a key already in the KMS.
	name, err := keyName(k.typ, k.uri, label, suffix)
	if err != nil {
		return "", nil, err
	}
	level, err := protectionLevel(k.typ, k.uri)
	if err != nil {
		return "", nil, err
	}
	resp, err := k.km.CreateKey(&apiv1.CreateKeyRequest{Name: name, SignatureAlgorithm: alg, ProtectionLevel: level})
	if err != nil {
		return "", nil, fmt.Errorf("cakms: create key in %s: %w", k.typ, err)
	}
	ref := resp.CreateSignerRequest.SigningKey
	if ref == "" {
		ref = resp.Name
	}
	s, err := k.Signer(context.Background(), ref)
	if err != nil {
		return "", nil, err
	}
	return ref, s, nil
}

// Signer opens the key ref names.
func (k *Keys) Signer(_ context.Context, ref string) (crypto.Signer, error) {
	s, err := k.km.CreateSigner(&apiv1.CreateSignerRequest{SigningKey: ref})
	if err != nil {
		return nil, fmt.Errorf("cakms: open key %s in %s: %w", ref, k.typ, err)
	}
	return s, nil
}

// Close releases the KMS (PKCS#11 sessions, the TPM).
func (k *Keys) Close() error { return k.km.Close() }

// redact drops the query of a URI (pin-value lives there) for messages.
func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?..."
	}
	return u
}
