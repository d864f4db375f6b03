package mqttapi_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/zdps/zdps/internal/testpki"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

func TestRegisterGroupKeyOverMQTT(t *testing.T) {
	srv := start(t)
	scope := srv.IDScope()
	ctx := context.Background()
	c := srv.Client()
	if _, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{EnrollmentGroupID: "grp-sym", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}}}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := c.GroupKeys(ctx, "grp-sym")
	if err != nil {
		t.Fatal(err)
	}
	groupKey, err := base64.StdEncoding.DecodeString(keys.SymmetricKey.PrimaryKey)
	if err != nil {
		t.Fatal(err)
	}
	regID := "grp-device-1"
	devKey := sas.DeriveDeviceKey(groupKey, regID)
	d, err := connect(t, dialOpts{broker: "tls://" + srv.MQTTAddr(), regID: regID, userName: userName(scope, regID), password: sasFor(devKey, scope, regID, ""), tls: srv.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	a := d.register(`{"registrationId":"` + regID + `","payload":{"model":"m1"}}`)
	state, _ := a.Body["registrationState"].(map[string]any)
	sym, _ := state["symmetricKey"].(map[string]any)
	if a.Status != 200 || a.Body["status"] != "assigned" || sym["enrollmentGroupId"] != "grp-sym" {
		t.Fatalf("register answered %d %s", a.Status, a.Raw)
	}
}

func TestRegisterX509OverMQTT(t *testing.T) {
	srv := start(t)
	scope := srv.IDScope()
	root := testpki.Issue(t, "mqtt-root", true, nil)
	leaf := testpki.Issue(t, "x509-mqtt-1", false, root)
	if _, err := srv.Client().PutEnrollment(context.Background(), &enrollment.IndividualEnrollment{
		RegistrationID: "x509-mqtt-1",
		Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{
			ClientCertificates: &enrollment.X509Certificates{Primary: &enrollment.X509CertificateWithInfo{Certificate: leaf.PEM()}}}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	withCert := srv.TLSConfig()
	withCert.Certificates = []tls.Certificate{{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key, Leaf: leaf.Cert}}
	for _, broker := range []string{"tls://" + srv.MQTTAddr(), "wss://" + srv.Addr() + "/$iothub/websocket"} {
		t.Run(broker[:strings.Index(broker, ":")], func(t *testing.T) {
			d, err := connect(t, dialOpts{broker: broker, regID: "x509-mqtt-1", userName: userName(scope, "x509-mqtt-1"), tls: withCert})
			if err != nil {
				t.Fatal(err)
			}
			a := d.register(`{"registrationId":"x509-mqtt-1"}`)
			if a.Status != 200 || a.Body["status"] != "assigned" {
				t.Fatalf("register answered %d %s", a.Status, a.Raw)
			}
		})
	}
	// Without the certificate the same device is refused at CONNECT.
	_, err := connect(t, dialOpts{broker: "tls://" + srv.MQTTAddr(), regID: "x509-mqtt-1", userName: userName(scope, "x509-mqtt-1"), tls: srv.TLSConfig()})
	if !errors.Is(err, packets.ConnErrors[packets.ErrRefusedNotAuthorised]) {
		t.Fatalf("connect without a certificate: %v, want not authorised", err)
	}
}

func TestRegisterCSROverMQTT(t *testing.T) {
	srv := start(t)
	scope := srv.IDScope()
	regID := "csr-mqtt-1"
	key := srv.SymmetricKeyEnrollment(regID)
	d, err := connect(t, dialOpts{broker: "tls://" + srv.MQTTAddr(), regID: regID, userName: userName(scope, regID), password: sasFor(key, scope, regID, "registration"), tls: srv.TLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	der := testpki.CSR(t, regID)
	pemCSR := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	b64 := base64.StdEncoding.EncodeToString(der)
	for _, tc := range []struct {
		name, field, csr string
		leaf             func(t *testing.T, state map[string]any) []byte
	}{
		{"csr answers issuedCertificateChain", "csr", b64, func(t *testing.T, state map[string]any) []byte {
			chain, _ := state["issuedCertificateChain"].([]any)
			if len(chain) != 3 || state["issuedClientCertificate"] != nil {
				t.Fatalf("registrationState %v", state)
			}
			b, _ := base64.StdEncoding.DecodeString(chain[0].(string))
			return b
		}},
		{"clientCertificateCsr PEM answers PEM", "clientCertificateCsr", pemCSR, func(t *testing.T, state map[string]any) []byte {
			s, _ := state["issuedClientCertificate"].(string)
			blk, _ := pem.Decode([]byte(s))
			if blk == nil || state["issuedCertificateChain"] != nil {
				t.Fatalf("registrationState %v", state)
			}
			checkTrustBundle(t, state)
			return blk.Bytes
		}},
		{"clientCertificateCsr base64 DER answers base64 DER", "clientCertificateCsr", b64, func(t *testing.T, state map[string]any) []byte {
			s, _ := state["issuedClientCertificate"].(string)
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Fatalf("issuedClientCertificate %q: %v", s, err)
			}
			checkTrustBundle(t, state)
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := d.register(`{"registrationId":"` + regID + `","` + tc.field + `":` + jsonString(tc.csr) + `}`)
			if a.Status != 200 || a.Body["status"] != "assigned" {
				t.Fatalf("register answered %d %s", a.Status, a.Raw)
			}
			state, _ := a.Body["registrationState"].(map[string]any)
			cert, err := x509.ParseCertificate(tc.leaf(t, state))
			if err != nil {
				t.Fatal(err)
			}
			if cert.Subject.CommonName != regID {
				t.Fatalf("issued certificate for %q", cert.Subject.CommonName)
			}
		})
	}
}

func checkTrustBundle(t *testing.T, state map[string]any) {
	t.Helper()
	tb, _ := state["trustBundle"].(map[string]any)
	certs, _ := tb["certificates"].([]any)
	if len(certs) != 2 {
		t.Fatalf("trustBundle %v", tb)
	}
	for _, c := range certs {
		pc, _ := c.(map[string]any)["certificate"].(string)
		if blk, _ := pem.Decode([]byte(pc)); blk == nil || blk.Type != "CERTIFICATE" {
			t.Fatalf("trust bundle certificate %q", pc)
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
