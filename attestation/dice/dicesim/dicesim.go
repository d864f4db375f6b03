// Package dicesim builds realistic TCG DICE certificate chains for tests,
// demos and benchmarks: a manufacturer root, a DeviceID certificate whose
// key is derived from the device secret (and the first layer's
// measurement), and an Alias certificate, the TLS client certificate,
// whose key is derived from the firmware measurements and which carries
// them in a DiceTcbInfo or DiceMultiTcbInfo extension. Keys are derived
// deterministically, as on a DICE device: the same device secret and
// first-layer firmware give the same DeviceID key; new firmware gives a
// new Alias key.
//
// It is a simulator: its keys live in memory and in files, not in a
// device. Never use it to make production credentials.
package dicesim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/zdps/zdps/attestation/dice"
)

// OIDSHA256 is the hash algorithm of the FWIDs the simulator computes.
var OIDSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}

// Default validity: DICE device certificates commonly never expire
// (RFC 5280 99991231235959Z); NotBefore is fixed so chains are
// reproducible.
var (
	DefaultNotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	DefaultNotAfter  = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// Cert is a certificate with its private key.
type Cert struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// PEM is the certificate in PEM.
func (c *Cert) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})
}

// KeyPEM is the private key in PKCS#8 PEM.
func (c *Cert) KeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// DeriveKey derives a P-256 key from secret and label with HKDF-SHA256,
// as a DICE layer derives its key from its compound device identifier.
func DeriveKey(secret []byte, label string) (*ecdsa.PrivateKey, error) {
	n := elliptic.P256().Params().N
	for ctr := 0; ctr < 16; ctr++ {
		b, err := hkdf.Key(sha256.New, secret, []byte{byte(ctr)}, "zdps dicesim "+label, 32)
		if err != nil {
			return nil, err
		}
		d := new(big.Int).SetBytes(b)
		if d.Sign() == 0 || d.Cmp(n) >= 0 {
			continue
		}
		return ecdsa.ParseRawPrivateKey(elliptic.P256(), b)
	}
	return nil, errors.New("dicesim: key derivation did not converge")
}

// NewRoot makes a self-signed manufacturer CA whose key is derived from
// seed (random when nil).
func NewRoot(cn string, seed []byte) (*Cert, error) {
	if seed == nil {
		seed = make([]byte, 32)
		if _, err := rand.Read(seed); err != nil {
			return nil, err
		}
	}
	key, err := DeriveKey(seed, "root")
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serialFor(key), Subject: pkix.Name{CommonName: cn, Organization: []string{"zdps DICE simulator"}},
		NotBefore: DefaultNotBefore, NotAfter: DefaultNotAfter,
		BasicConstraintsValid: true, IsCA: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	return sign(tmpl, key, nil)
}

// Measure is the SHA-256 FWID of a firmware image.
func Measure(firmware []byte) dice.FWID {
	sum := sha256.Sum256(firmware)
	return dice.FWID{HashAlg: OIDSHA256, Digest: sum[:]}
}

// Device describes the simulated device and what its chain states.
type Device struct {
	// UDS is the unique device secret (at least 16 bytes).
	UDS []byte
	// RegistrationID is the Alias certificate's CN.
	RegistrationID string
	// DeviceIDTcbInfo, when set, is put into the DeviceID certificate
	// (the measurement of layer 0, taken by the DICE engine). Its FWIDs
	// enter the DeviceID key derivation.
	DeviceIDTcbInfo *dice.TcbInfo
	// AliasTcbInfos are put into the Alias certificate: one as a
	// DiceTcbInfo, several (or one with Multi) as a DiceMultiTcbInfo.
	// Their FWIDs enter the Alias key derivation.
	AliasTcbInfos []dice.TcbInfo
	Multi         bool
	// LegacyRIoT puts a RIoT CompositeDeviceID (version 1, the DeviceID
	// key, the first Alias FWID) under OIDTcbInfo instead of a TcbInfo.
	LegacyRIoT bool
	// UEID, when set, is put into the DeviceID certificate.
	UEID []byte
	// Critical marks the DICE extensions critical.
	Critical bool
	// AliasExtensions are added to the Alias certificate as given (for
	// example an unknown critical extension).
	AliasExtensions []pkix.Extension
	// NotBefore and NotAfter default to DefaultNotBefore and
	// DefaultNotAfter.
	NotBefore, NotAfter time.Time
}

// Chain is a built DICE chain.
type Chain struct {
	DeviceID *Cert
	Alias    *Cert
	Root     *Cert
}

// ChainPEM is what the device presents: the Alias certificate, then the
// DeviceID certificate.
func (c *Chain) ChainPEM() []byte {
	return append(c.Alias.PEM(), c.DeviceID.PEM()...)
}

// Build issues the DeviceID certificate under root and the Alias
// certificate under the DeviceID key.
func Build(root *Cert, d Device) (*Chain, error) {
	if root == nil || root.Cert == nil || root.Key == nil {
		return nil, errors.New("dicesim: a root with its key is required")
	}
	if len(d.UDS) < 16 {
		return nil, errors.New("dicesim: UDS must have at least 16 bytes")
	}
	if d.RegistrationID == "" {
		return nil, errors.New("dicesim: RegistrationID is required")
	}
	if d.NotBefore.IsZero() {
		d.NotBefore = DefaultNotBefore
	}
	if d.NotAfter.IsZero() {
		d.NotAfter = DefaultNotAfter
	}
	// CDI_L0 = HMAC(UDS, measurement of layer 0): here HKDF over both.
	cdi0 := append([]byte{}, d.UDS...)
	if d.DeviceIDTcbInfo != nil {
		for _, f := range d.DeviceIDTcbInfo.FWIDs {
			cdi0 = append(cdi0, f.Digest...)
		}
	}
	idKey, err := DeriveKey(cdi0, "DeviceID")
	if err != nil {
		return nil, err
	}
	cdi1 := append([]byte{}, cdi0...)
	for _, t := range d.AliasTcbInfos {
		for _, f := range t.FWIDs {
			cdi1 = append(cdi1, f.Digest...)
		}
	}
	aliasKey, err := DeriveKey(cdi1, "Alias")
	if err != nil {
		return nil, err
	}

	idTmpl := &x509.Certificate{
		SerialNumber: serialFor(idKey),
		Subject:      pkix.Name{CommonName: "DeviceID " + dice.KeyID(mustSPKI(idKey))[7:23], Organization: []string{"zdps DICE simulator"}},
		NotBefore:    d.NotBefore, NotAfter: d.NotAfter,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	if d.DeviceIDTcbInfo != nil {
		v, err := d.DeviceIDTcbInfo.Marshal()
		if err != nil {
			return nil, err
		}
		idTmpl.ExtraExtensions = append(idTmpl.ExtraExtensions, pkix.Extension{Id: dice.OIDTcbInfo, Critical: d.Critical, Value: v})
	}
	if d.UEID != nil {
		v, err := dice.MarshalUeid(d.UEID)
		if err != nil {
			return nil, err
		}
		idTmpl.ExtraExtensions = append(idTmpl.ExtraExtensions, pkix.Extension{Id: dice.OIDUeid, Critical: d.Critical, Value: v})
	}
	id, err := sign(idTmpl, idKey, root)
	if err != nil {
		return nil, err
	}

	aliasTmpl := &x509.Certificate{
		SerialNumber: serialFor(aliasKey),
		Subject:      pkix.Name{CommonName: d.RegistrationID},
		NotBefore:    d.NotBefore, NotAfter: d.NotAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	switch {
	case d.LegacyRIoT:
		riot := &dice.CompositeDeviceID{Version: 1, DeviceID: mustSPKI(idKey)}
		if len(d.AliasTcbInfos) > 0 && len(d.AliasTcbInfos[0].FWIDs) > 0 {
			riot.FWID = d.AliasTcbInfos[0].FWIDs[0]
		} else {
			riot.FWID = Measure(nil)
		}
		v, err := riot.Marshal()
		if err != nil {
			return nil, err
		}
		aliasTmpl.ExtraExtensions = append(aliasTmpl.ExtraExtensions, pkix.Extension{Id: dice.OIDTcbInfo, Critical: d.Critical, Value: v})
	case len(d.AliasTcbInfos) == 1 && !d.Multi:
		v, err := d.AliasTcbInfos[0].Marshal()
		if err != nil {
			return nil, err
		}
		aliasTmpl.ExtraExtensions = append(aliasTmpl.ExtraExtensions, pkix.Extension{Id: dice.OIDTcbInfo, Critical: d.Critical, Value: v})
	case len(d.AliasTcbInfos) > 0:
		v, err := dice.MarshalMultiTcbInfo(d.AliasTcbInfos)
		if err != nil {
			return nil, err
		}
		aliasTmpl.ExtraExtensions = append(aliasTmpl.ExtraExtensions, pkix.Extension{Id: dice.OIDMultiTcbInfo, Critical: d.Critical, Value: v})
	}
	aliasTmpl.ExtraExtensions = append(aliasTmpl.ExtraExtensions, d.AliasExtensions...)
	alias, err := sign(aliasTmpl, aliasKey, id)
	if err != nil {
		return nil, err
	}
	return &Chain{DeviceID: id, Alias: alias, Root: root}, nil
}

// WriteFiles writes the chain into dir: alias-chain.pem (Alias then
// DeviceID, what the device presents), alias.key (PKCS#8, mode 0600) and
// deviceid.pem (what an individual enrollment names).
func (c *Chain) WriteFiles(dir string) error {
	key, err := c.Alias.KeyPEM()
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"alias-chain.pem", c.ChainPEM(), 0o644},
		{"alias.key", key, 0o600},
		{"deviceid.pem", c.DeviceID.PEM(), 0o644},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func mustSPKI(k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		panic(err) // a P-256 public key always marshals
	}
	return der
}

// serialFor derives a positive 128-bit serial from the public key, as
// RIoT does, so a certificate's serial is stable for its key.
func serialFor(k *ecdsa.PrivateKey) *big.Int {
	sum := sha256.Sum256(mustSPKI(k))
	sum[0] &= 0x7f
	sum[0] |= 0x40
	return new(big.Int).SetBytes(sum[:16])
}

func sign(tmpl *x509.Certificate, key *ecdsa.PrivateKey, parent *Cert) (*Cert, error) {
	pc, signer := tmpl, key
	if parent != nil {
		pc, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pc, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("dicesim: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("dicesim: %w", err)
	}
	return &Cert{Cert: c, Key: key}, nil
}
