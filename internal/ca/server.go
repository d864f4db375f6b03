package ca

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"time"

	"go.step.sm/crypto/keyutil"
)

// ServerCertificate issues a TLS server certificate for zdps itself with a
// fresh ECDSA P-256 key, or with the TLS key in the KMS when the CA was
// created in one (Config.KMS). hosts are DNS names (wildcards allowed) or IP
// addresses; the first is also the subject CN. The result carries the leaf
// and the intermediate, ready for tls.Config.Certificates; clients trust
// Root() (or BundlePEM). Nothing is stored: call it at every start.
func (c *CA) ServerCertificate(hosts []string, validity time.Duration) (tls.Certificate, error) {
	if len(hosts) == 0 {
		return tls.Certificate{}, fmt.Errorf("%w: at least one host is required", ErrInvalidHost)
	}
	if validity < 0 {
		return tls.Certificate{}, fmt.Errorf("%w: negative validity", ErrInvalidPolicy)
	}
	var dns []string
	var ips []net.IP
	cn := ""
	for i, h := range hosts {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h), "["), "]")
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else if validDNSName(h) {
			h = strings.ToLower(h)
			dns = append(dns, h)
		} else {
			return tls.Certificate{}, fmt.Errorf("%w: %q", ErrInvalidHost, h)
		}
		// The CN is for old clients only (verifiers use the SANs); X.520
		// caps it at 64 characters.
		if i == 0 && len(h) <= 64 {
			cn = h
		}
	}
	// A CA whose keys are in a KMS keeps the TLS key there too: it is
	// reused by every certificate and each handshake signs in the KMS.
	key := c.cur.Load().TLSSigner
	if key == nil {
		var err error
		if key, err = keyutil.GenerateSigner("EC", "P-256", 0); err != nil {
			return tls.Certificate{}, fmt.Errorf("ca: server key: %w", err)
		}
	}
	is, err := c.issue(key.Public(), cn, validity, leafServer, func(t *x509.Certificate) {
		t.DNSNames, t.IPAddresses = dns, ips
		t.CRLDistributionPoints = nil // zdps's own certificate is rotated, not revoked
	})
	if err != nil {
		return tls.Certificate{}, err
	}
	c.log.Info("server certificate issued", "hosts", hosts, "serial", is.Serial, "not_after", is.Certificate.NotAfter)
	return tls.Certificate{
		// The leaf and every intermediate (a delegated CA's chain has two).
		Certificate: is.Chain[:len(is.Chain)-1],
		PrivateKey:  key,
		Leaf:        is.Certificate,
	}, nil
}

// validDNSName accepts LDH labels, an optional leading "*." wildcard, and
// "localhost"-style single labels.
func validDNSName(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	h = strings.TrimPrefix(h, "*.")
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
