package cakms_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zdps/zdps/internal/ca"
	"github.com/zdps/zdps/internal/cakms"
)

// builtTags are the cloud KMS tags this test binary was built with: each
// tag_*_test.go adds its own.
var builtTags = map[string]bool{}

// Without its tag, a cloud KMS URI fails with ErrNotBuilt naming the tag;
// with it, Open works offline (the SDKs only reach the cloud when called;
// none is reachable here), and CreateKey refuses a URI that lacks what the
// key's name needs before it calls the cloud.
func TestCloudKMSTags(t *testing.T) {
	gcp := fakeServiceAccount(t)
	for _, tc := range []struct {
		tag, uri string
		// incomplete opens but cannot name a key ("" when every URI can).
		incomplete string
	}{
		{"azurekms", "azurekms:vault=zdps-ca", "azurekms:environment=AzurePublicCloud"},
		{"awskms", "awskms:region=eu-west-1", ""},
		{"cloudkms", "cloudkms:key-ring=projects/p/locations/l/keyRings/r;credentials-file=" + gcp, "cloudkms:credentials-file=" + gcp},
	} {
		t.Run(tc.tag, func(t *testing.T) {
			keys, err := cakms.Open(t.Context(), tc.uri, cakms.Options{})
			if !builtTags[tc.tag] {
				if !errors.Is(err, cakms.ErrNotBuilt) || !strings.Contains(err.Error(), "-tags "+tc.tag) || !strings.Contains(err.Error(), "TAGS='pkcs11 "+tc.tag+"'") {
					t.Fatalf("err = %v, want ErrNotBuilt naming the %s tag", err, tc.tag)
				}
				return
			}
			if errors.Is(err, cakms.ErrNotBuilt) {
				t.Fatalf("built with %s, but: %v", tc.tag, err)
			}
			if err != nil {
				t.Fatal(err)
			}
			if keys.Type() != tc.tag {
				t.Errorf("Type = %q", keys.Type())
			}
			_ = keys.Close()
			if tc.incomplete == "" {
				return
			}
			keys, err = cakms.Open(t.Context(), tc.incomplete, cakms.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = keys.Close() }()
			if _, _, err := keys.CreateKey(t.Context(), ca.KeyECP256, "zdps-tls"); !errors.Is(err, cakms.ErrInvalidURI) {
				t.Fatalf("CreateKey with %q: %v, want ErrInvalidURI", tc.incomplete, err)
			}
		})
	}
}

// fakeServiceAccount writes a Google service account key file that no
// project knows: enough for the Cloud KMS client to open (it fetches tokens
// only when it calls), so that CreateKey's refusals are reached offline.
func fakeServiceAccount(t *testing.T) string {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "zdps-test",
		"private_key_id": "0123456789abcdef",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "zdps@zdps-test.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      "https://127.0.0.1:1/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "gcp.json")
	if err := os.WriteFile(p, js, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
