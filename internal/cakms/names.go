package cakms

import (
	"encoding/hex"
	"fmt"
	"strings"

	"go.step.sm/crypto/kms/apiv1"
	"go.step.sm/crypto/kms/uri"
)

// keyName is the name CreateKey asks the KMS for: the label plus a random
// suffix, in the form that backend's CreateKey parses. configURI is the URI
// the KMS was opened with: Azure's vault and Google's key ring come from it.
// The name is not the reference: each KMS answers with its own (AWS a key
// id, Google a key version, Azure a key version), and that is what zdps
// stores.
func keyName(typ apiv1.Type, configURI, label string, suffix []byte) (string, error) {
	id := hex.EncodeToString(suffix)
	switch typ {
	case apiv1.PKCS11:
		return fmt.Sprintf("pkcs11:id=%s;object=%s-%s", id, label, hex.EncodeToString(suffix[:4])), nil
	case apiv1.TPMKMS:
		return fmt.Sprintf("tpmkms:name=%s-%s", label, id), nil
	case apiv1.AzureKMS:
		// Key Vault key names: 1-127 letters, digits and dashes.
		vault, err := uriParam(typ, configURI, "vault")
		if err != nil {
			return "", err
		}
		if vault == "" || !isName(vault, "-") {
			return "", fmt.Errorf("%w: azurekms needs vault=<key vault name> (letters, digits, dashes) to create keys", ErrInvalidURI)
		}
		return fmt.Sprintf("azurekms:name=%s-%s;vault=%s", label, id, vault), nil
	case apiv1.AmazonKMS:
		// awskms creates the key and the alias alias/<name>-<key id prefix>;
		// alias names allow letters, digits, / _ -.
		return fmt.Sprintf("awskms:name=%s-%s", label, id), nil
	case apiv1.CloudKMS:
		// A crypto key lives in a key ring (cloudkms creates the ring when it
		// is missing); key ids allow letters, digits, _ and -, 63 at most.
		ring, err := uriParam(typ, configURI, "key-ring")
		if err != nil {
			return "", err
		}
		if !isKeyRing(ring) {
			return "", fmt.Errorf("%w: cloudkms needs key-ring=projects/<project>/locations/<location>/keyRings/<ring> to create keys", ErrInvalidURI)
		}
		return fmt.Sprintf("%s/cryptoKeys/%s-%s", ring, label, id), nil
	}
	return "", fmt.Errorf("%w: %s (create the key with the provider's tools; see the README)", ErrCreateUnsupported, typ)
}

// protectionLevel is what CreateKey asks for. Only Google's needs asking:
// its keys are software-protected unless protection-level=hsm; Azure reads
// hsm=true from the URI itself, AWS KMS keys are always in its HSMs, and
// PKCS#11 and TPM keys are in the device.
func protectionLevel(typ apiv1.Type, configURI string) (apiv1.ProtectionLevel, error) {
	if typ != apiv1.CloudKMS {
		return apiv1.UnspecifiedProtectionLevel, nil
	}
	v, err := uriParam(typ, configURI, "protection-level")
	if err != nil {
		return 0, err
	}
	switch strings.ToLower(v) {
	case "":
		return apiv1.UnspecifiedProtectionLevel, nil
	case "software":
		return apiv1.Software, nil
	case "hsm":
		return apiv1.HSM, nil
	}
	return 0, fmt.Errorf("%w: cloudkms protection-level is software or hsm", ErrInvalidURI)
}

// uriParam is one parameter of the KMS URI. Errors never quote the URI: it
// may carry a secret (Azure's client-secret, a PIN).
func uriParam(typ apiv1.Type, rawURI, key string) (string, error) {
	u, err := uri.ParseWithScheme(string(typ), rawURI)
	if err != nil {
		return "", fmt.Errorf("%w: not a %s URI", ErrInvalidURI, typ)
	}
	return u.Get(key), nil
}

// isKeyRing: projects/P/locations/L/keyRings/R, each part a plain name.
func isKeyRing(s string) bool {
	p := strings.Split(s, "/")
	return len(p) == 6 && p[0] == "projects" && p[2] == "locations" && p[4] == "keyRings" &&
		isName(p[1], "-_.:") && isName(p[3], "-_") && isName(p[5], "-_")
}

// isName: non-empty, ASCII letters and digits and the extra characters only.
func isName(s, extra string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune(extra, r)) {
			return false
		}
	}
	return true
}
