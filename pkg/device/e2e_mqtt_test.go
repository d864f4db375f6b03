package device_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/testpki"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/device"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// startMQTT is a real `zdps serve` and its MQTT listener's address.
func startMQTT(t *testing.T, extra ...string) (*zdpstest.Server, string) {
	t.Helper()
	srv := zdpstest.Start(t, extra...)
	return srv, srv.MQTTAddr()
}

func TestRealServerMQTT(t *testing.T) {
	srv, mqttAddr := startMQTT(t)
	ctx := context.Background()
	c := srv.Client()
	addHubs(t, srv, "hub-m.example.net")
	key := symmetricEnrollment(t, srv, "mqtt-sym-1", "mqtt-device-1")
	if _, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "mqtt-group", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	gkeys, err := c.GroupKeys(ctx, "mqtt-group")
	if err != nil {
		t.Fatal(err)
	}
	groupKey := decode(t, gkeys.SymmetricKey.PrimaryKey)
	root := testpki.Issue(t, "MQTT Fleet Root", true, nil)
	inter := testpki.Issue(t, "MQTT Fleet Intermediate", true, root)
	if _, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "mqtt-x509", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationX509, X509: &enrollment.X509Attestation{SigningCertificates: certs(root)}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	stranger := testpki.Issue(t, "MQTT Stranger Root", true, nil)

	for _, transport := range []string{device.TransportMQTT, device.TransportMQTTWS} {
		endpoint := srv.Addr()
		if transport == device.TransportMQTT {
			endpoint = mqttAddr
		}
		cases := []struct {
			name              string
			regID             string
			set               func(*device.Config)
			wantDevice, group string
			want              error
		}{
			{"individual key", "mqtt-sym-1", func(c *device.Config) { c.SymmetricKey = key }, "mqtt-device-1", "", nil},
			{"key derived from a group key", "mqtt-grp-" + transport, func(c *device.Config) { c.GroupKey = groupKey }, "mqtt-grp-" + transport, "mqtt-group", nil},
			{"X.509 leaf and intermediate under a group", "", func(c *device.Config) {
				c.Certificate = tlsCert(testpki.Issue(t, "mqtt-x509-"+transport, false, inter), inter)
			}, "mqtt-x509-" + transport, "mqtt-x509", nil},
			{"wrong key", "mqtt-sym-1", func(c *device.Config) { c.SymmetricKey = bytes.Repeat([]byte{7}, 32) }, "", "", device.ErrUnauthorized},
			{"group key used directly", "mqtt-grp-direct", func(c *device.Config) { c.SymmetricKey = groupKey }, "", "", device.ErrUnauthorized},
			{"certificate of an unknown CA", "", func(c *device.Config) {
				c.Certificate = tlsCert(testpki.Issue(t, "mqtt-stranger", false, stranger))
			}, "", "", device.ErrUnauthorized},
		}
		for _, tc := range cases {
			t.Run(transport+"/"+tc.name, func(t *testing.T) {
				cfg := device.Config{Endpoint: endpoint, Transport: transport, IDScope: srv.IDScope(), RegistrationID: tc.regID,
					RootCAs: srv.RootCAs(), GenerateKey: true, MaxWait: time.Minute, MaxRetries: 2}
				tc.set(&cfg)
				res, err := device.Register(ctx, cfg)
				if tc.want != nil {
					if !errors.Is(err, tc.want) {
						t.Fatalf("want %v, got %v", tc.want, err)
					}
					return
				}
				if err != nil {
					t.Fatalf("%v\n%s", err, srv.Logs())
				}
				if res.Status != "assigned" || res.DeviceID != tc.wantDevice || res.EnrollmentGroupID != tc.group || res.AssignedHub != "hub-m.example.net" {
					t.Fatalf("result %+v", res)
				}
				verifyIssued(t, srv, res)
				rec, err := c.GetRegistration(ctx, res.RegistrationID)
				if err != nil || rec.DeviceID != res.DeviceID {
					t.Fatalf("record %+v, %v", rec, err)
				}
			})
		}
	}
	// A device registered over MQTT registers again over HTTPS: the
	// same device ID and hub, from the record MQTT made.
	t.Run("HTTPS sees the MQTT registration", func(t *testing.T) {
		res, err := device.Register(ctx, device.Config{Endpoint: srv.Addr(), IDScope: srv.IDScope(), RegistrationID: "mqtt-grp-" + device.TransportMQTT,
			SymmetricKey: sas.DeriveDeviceKey(groupKey, "mqtt-grp-"+device.TransportMQTT), RootCAs: srv.RootCAs(), MaxWait: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if res.DeviceID != "mqtt-grp-"+device.TransportMQTT || res.AssignedHub != "hub-m.example.net" || res.Substatus == "" {
			t.Errorf("re-registration over HTTPS: %+v", res)
		}
	})
}

// A registration that takes longer than --assign-wait is polled over
// MQTT: 202 with retry-after, then the operation status topic.
func TestRealServerMQTTPolling(t *testing.T) {
	srv, mqttAddr := startMQTT(t, "--azure-202")
	addHubs(t, srv, "hub-p.example.net")
	key := symmetricEnrollment(t, srv, "mqtt-poll-1", "mqtt-poll-device")
	res, err := device.Register(context.Background(), device.Config{Endpoint: mqttAddr, Transport: device.TransportMQTT, IDScope: srv.IDScope(),
		RegistrationID: "mqtt-poll-1", SymmetricKey: key, RootCAs: srv.RootCAs(), GenerateKey: true, MaxWait: time.Minute})
	if err != nil {
		t.Fatalf("%v\n%s", err, srv.Logs())
	}
	if res.DeviceID != "mqtt-poll-device" || res.OperationID == "" {
		t.Fatalf("result %+v", res)
	}
	verifyIssued(t, srv, res)
}

// A certificate issued over MQTT renews over MQTT: the operational
// certificate is the TLS client certificate of the next CONNECT.
func TestRealServerMQTTRenewal(t *testing.T) {
	srv, mqttAddr := startMQTT(t)
	ctx := context.Background()
	addHubs(t, srv, "hub-r.example.net")
	key := symmetricEnrollment(t, srv, "mqtt-ren-1", "mqtt-ren-device")
	base := device.Config{Endpoint: mqttAddr, Transport: device.TransportMQTT, IDScope: srv.IDScope(), RegistrationID: "mqtt-ren-1",
		RootCAs: srv.RootCAs(), MaxWait: time.Minute}
	first := base
	first.SymmetricKey, first.GenerateKey = key, true
	res, err := device.Register(ctx, first)
	if err != nil {
		t.Fatalf("%v\n%s", err, srv.Logs())
	}
	tc, err := res.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	renew := base
	renew.Certificate = &tc
	renewed, err := device.Renew(ctx, renew)
	if err != nil {
		t.Fatalf("renewal over MQTT: %v\n%s", err, srv.Logs())
	}
	verifyIssued(t, srv, renewed)
	if renewed.DeviceID != res.DeviceID || renewed.IssuedCertificateChain[0].SerialNumber.Cmp(res.IssuedCertificateChain[0].SerialNumber) == 0 {
		t.Fatalf("renewed %s as %q, first %q: want the same device and a new serial", renewed.IssuedCertificateChain[0].SerialNumber, renewed.DeviceID, res.DeviceID)
	}
}
