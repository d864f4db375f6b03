package cakms

import (
	"errors"
	"strings"
	"testing"

	"go.step.sm/crypto/kms/apiv1"
)

// The names CreateKey asks each KMS for, in the form its CreateKey in
// go.step.sm/crypto parses; no cloud is reachable here, so the names are
// what can be tested.
func TestKeyName(t *testing.T) {
	suffix := []byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	const ring = "projects/zdps-prod/locations/europe-west1/keyRings/zdps"
	for _, tc := range []struct {
		typ     apiv1.Type
		uri     string
		want    string
		wantErr error
	}{
		{apiv1.PKCS11, "pkcs11:token=zdps?pin-value=1234", "pkcs11:id=0123456789abcdef;object=zdps-ca-intermediate-01234567", nil},
		{apiv1.TPMKMS, "tpmkms:device=/dev/tpmrm0", "tpmkms:name=zdps-ca-intermediate-0123456789abcdef", nil},
		{apiv1.AzureKMS, "azurekms:vault=zdps-ca", "azurekms:name=zdps-ca-intermediate-0123456789abcdef;vault=zdps-ca", nil},
		{apiv1.AzureKMS, "azurekms:vault=zdps-ca;hsm=true?client-secret=s3cr3t", "azurekms:name=zdps-ca-intermediate-0123456789abcdef;vault=zdps-ca", nil},
		{apiv1.AzureKMS, "azurekms:client-id=x?client-secret=s3cr3t", "", ErrInvalidURI},
		{apiv1.AzureKMS, "azurekms:vault=zdps.ca", "", ErrInvalidURI},
		{apiv1.AzureKMS, "azurekms:", "", ErrInvalidURI},
		{apiv1.AmazonKMS, "awskms:region=eu-west-1", "awskms:name=zdps-ca-intermediate-0123456789abcdef", nil},
		{apiv1.AmazonKMS, "awskms:", "awskms:name=zdps-ca-intermediate-0123456789abcdef", nil},
		{apiv1.CloudKMS, "cloudkms:key-ring=" + ring, ring + "/cryptoKeys/zdps-ca-intermediate-0123456789abcdef", nil},
		{apiv1.CloudKMS, "cloudkms:credentials-file=/etc/zdps/gcp.json;key-ring=" + ring, ring + "/cryptoKeys/zdps-ca-intermediate-0123456789abcdef", nil},
		{apiv1.CloudKMS, "cloudkms:credentials-file=/etc/zdps/gcp.json", "", ErrInvalidURI},
		{apiv1.CloudKMS, "cloudkms:key-ring=projects/p/locations/l", "", ErrInvalidURI},
		{apiv1.CloudKMS, "cloudkms:key-ring=projects/p/locations/l/keyRings/r/cryptoKeys/k", "", ErrInvalidURI},
		{apiv1.CloudKMS, "cloudkms:key-ring=projects/p/regions/l/keyRings/r", "", ErrInvalidURI},
		{apiv1.CloudKMS, "cloudkms:key-ring=projects/p/locations/l/keyRings/r%2Fx", "", ErrInvalidURI},
		{apiv1.YubiKey, "yubikey:serial=1", "", ErrCreateUnsupported},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			got, err := keyName(tc.typ, tc.uri, "zdps-ca-intermediate", suffix)
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("keyName = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Fatalf("the error echoes the secret: %v", err)
			}
		})
	}
}

// Every name the cloud KMSes get fits their rules, for every label the CA
// uses and the longest suffix.
func TestKeyNameFitsTheCloudRules(t *testing.T) {
	suffix := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for _, label := range []string{"zdps-ca-intermediate", "zdps-tls"} {
		az, err := keyName(apiv1.AzureKMS, "azurekms:vault=v", label, suffix)
		if err != nil {
			t.Fatal(err)
		}
		n := strings.TrimSuffix(strings.TrimPrefix(az, "azurekms:name="), ";vault=v")
		if len(n) > 127 || !isName(n, "-") {
			t.Errorf("azure key name %q", n)
		}
		gc, err := keyName(apiv1.CloudKMS, "cloudkms:key-ring=projects/p/locations/l/keyRings/r", label, suffix)
		if err != nil {
			t.Fatal(err)
		}
		_, id, _ := strings.Cut(gc, "/cryptoKeys/")
		if len(id) > 63 || !isName(id, "-_") {
			t.Errorf("google key id %q", id)
		}
		aws, err := keyName(apiv1.AmazonKMS, "awskms:", label, suffix)
		if err != nil {
			t.Fatal(err)
		}
		// awskms appends "-" and 8 characters of the key id to the alias.
		if a := "alias/" + strings.TrimPrefix(aws, "awskms:name=") + "-12345678"; len(a) > 256 || !isName(a, "/_-") {
			t.Errorf("aws alias %q", a)
		}
	}
}

func TestProtectionLevel(t *testing.T) {
	const ring = "cloudkms:key-ring=projects/p/locations/l/keyRings/r"
	for _, tc := range []struct {
		typ     apiv1.Type
		uri     string
		want    apiv1.ProtectionLevel
		wantErr error
	}{
		{apiv1.CloudKMS, ring, apiv1.UnspecifiedProtectionLevel, nil},
		{apiv1.CloudKMS, ring + ";protection-level=hsm", apiv1.HSM, nil},
		{apiv1.CloudKMS, ring + ";protection-level=HSM", apiv1.HSM, nil},
		{apiv1.CloudKMS, ring + ";protection-level=software", apiv1.Software, nil},
		{apiv1.CloudKMS, ring + ";protection-level=external", 0, ErrInvalidURI},
		// Azure's own hsm=true is read by azurekms from the URI it opened.
		{apiv1.AzureKMS, "azurekms:vault=v;hsm=true", apiv1.UnspecifiedProtectionLevel, nil},
		{apiv1.AmazonKMS, "awskms:protection-level=hsm", apiv1.UnspecifiedProtectionLevel, nil},
		{apiv1.PKCS11, "pkcs11:token=zdps", apiv1.UnspecifiedProtectionLevel, nil},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			got, err := protectionLevel(tc.typ, tc.uri)
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("protectionLevel = %v, %v; want %v, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
