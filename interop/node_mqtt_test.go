package interop

import (
	"bytes"
	"context"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/testpki"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/enrollment"
)

// The official Node.js SDK's MQTT transports (azure-iot-provisioning-device-mqtt:
// Mqtt over TLS, MqttWs over a WebSocket at /$iothub/websocket) against a
// real `zdps serve`. That SDK sends no CSR over MQTT (its register body is
// registrationId and payload only), so no certificate is issued here; the
// Go SDK's MQTT tests cover the CSR.

// startMQTTServer is `zdps serve` and its MQTT listener's port.
func startMQTTServer(t *testing.T, extra ...string) (*zdpstest.Server, string) {
	t.Helper()
	srv := zdpstest.Start(t, extra...)
	_, port, err := net.SplitHostPort(srv.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	return srv, port
}

// nodeTransports are the SDK's two MQTT transports and the port each
// reaches zdps on.
func nodeTransports(srv *zdpstest.Server, mqttPort string) []struct{ name, port string } {
	return []struct{ name, port string }{{"Mqtt", mqttPort}, {"MqttWs", srv.Port}}
}

// TestNodeSDKMQTT: symmetric key (individual and group-derived) and X.509
// (individual leaf, leaf + intermediate under a group) over both MQTT
// transports end assigned; a wrong key is refused at CONNECT.
func TestNodeSDKMQTT(t *testing.T) {
	srv, mqttPort := startMQTTServer(t)
	ctx := context.Background()
	c := srv.Client()
	addHubs(t, srv, "hub-mq.example.net")
	if _, err := c.PutEnrollment(ctx, &enrollment.IndividualEnrollment{
		RegistrationID: "node-mqtt-sym", DeviceID: "node-mqtt-device",
		Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := c.EnrollmentKeys(ctx, "node-mqtt-sym")
	if err != nil {
		t.Fatal(err)
	}
	gkey := groupKey(t, srv, &enrollment.EnrollmentGroup{EnrollmentGroupID: "node-mqtt-group"})

	indLeaf := testpki.Issue(t, "node-mqtt-x509", false, nil)
	if _, err := c.PutEnrollment(ctx, &enrollment.IndividualEnrollment{
		RegistrationID: "node-mqtt-x509", DeviceID: "node-mqtt-x509-device", Spec: enrollment.Spec{Attestation: x509Mechanism(&enrollment.X509Attestation{ClientCertificates: primaryCert(indLeaf)})},
	}, ""); err != nil {
		t.Fatal(err)
	}
	root := testpki.Issue(t, "zdps mqtt interop root", true, nil)
	inter := testpki.Issue(t, "zdps mqtt interop intermediate", true, root)
	if _, err := c.PutGroup(ctx, &enrollment.EnrollmentGroup{
		EnrollmentGroupID: "node-mqtt-x509-group", Spec: enrollment.Spec{Attestation: x509Mechanism(&enrollment.X509Attestation{SigningCertificates: primaryCert(root)})},
	}, ""); err != nil {
		t.Fatal(err)
	}

	for _, tr := range nodeTransports(srv, mqttPort) {
		grpID := "node-mqtt-grp-" + strings.ToLower(tr.name)
		leafID := "node-mqtt-leaf-" + strings.ToLower(tr.name)
		cases := []struct {
			name, regID, wantDevice string
			env                     []string
		}{
			{"individual symmetric key", "node-mqtt-sym", "node-mqtt-device", []string{"SYMMETRIC_KEY=" + keys.SymmetricKey.PrimaryKey}},
			{"key derived from the group key", grpID, grpID, []string{deviceKey(gkey, grpID)}},
			{"X.509 individual leaf", "node-mqtt-x509", "node-mqtt-x509-device", deviceFiles(t, indLeaf)},
			{"X.509 leaf and intermediate under a group", leafID, leafID, deviceFiles(t, testpki.Issue(t, leafID, false, inter), inter)},
		}
		for _, tc := range cases {
			t.Run(tr.name+"/"+tc.name, func(t *testing.T) {
				env := append([]string{"TRANSPORT=" + tr.name, "PORT=" + tr.port}, tc.env...)
				res := nodeDevice(t, srv, srv.IDScope(), tc.regID, env...)
				if !res.OK || res.Status != "assigned" || res.DeviceID != tc.wantDevice || res.AssignedHub != "hub-mq.example.net" {
					t.Fatalf("registration did not end assigned as %s: %+v\nserver log:\n%s", tc.wantDevice, res, srv.Logs())
				}
				rec, err := c.GetRegistration(ctx, tc.regID)
				if err != nil || rec.DeviceID != res.DeviceID || rec.Status != enrollment.RegistrationAssigned {
					t.Fatalf("record %+v, %v", rec, err)
				}
			})
		}
		t.Run(tr.name+"/wrong key refused", func(t *testing.T) {
			bad := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
			res := nodeDevice(t, srv, srv.IDScope(), "node-mqtt-sym", "TRANSPORT="+tr.name, "PORT="+tr.port, "SYMMETRIC_KEY="+bad, "TIMEOUT_MS=20000")
			if res.OK {
				t.Fatalf("a wrong key registered: %+v", res)
			}
			// CONNACK 5, which mqtt.js reports as is.
			if !strings.Contains(res.Error, "Not authorized") {
				t.Fatalf("want the CONNECT refused as not authorized, got %+v", res)
			}
		})
	}
}

// TestNodeSDKMQTTThrottled: a device registering again within
// --throttle-register 1/3s gets 429 with retry-after on the answer topic;
// the SDK's MQTT transport waits that long, registers again and ends
// assigned.
func TestNodeSDKMQTTThrottled(t *testing.T) {
	srv, mqttPort := startMQTTServer(t, "--throttle-register", "1/3s")
	addHubs(t, srv, "hub-th.example.net")
	gkey := groupKey(t, srv, &enrollment.EnrollmentGroup{EnrollmentGroupID: "node-mqtt-throttle"})
	for _, tr := range nodeTransports(srv, mqttPort) {
		t.Run(tr.name, func(t *testing.T) {
			regID := "node-mqtt-throttled-" + strings.ToLower(tr.name)
			env := []string{"TRANSPORT=" + tr.name, "PORT=" + tr.port, deviceKey(gkey, regID)}
			if res := nodeDevice(t, srv, srv.IDScope(), regID, env...); !res.OK {
				t.Fatalf("first registration: %+v\n%s", res, srv.Logs())
			}
			start := time.Now()
			res := nodeDevice(t, srv, srv.IDScope(), regID, env...)
			elapsed := time.Since(start)
			if !res.OK || res.Status != "assigned" {
				t.Fatalf("throttled registration did not end assigned: %+v\n%s", res, srv.Logs())
			}
			// Unthrottled, a registration takes well under a second here;
			// throttled, it waits most of the 3 s window.
			if elapsed < 2*time.Second {
				t.Errorf("the second registration took %s: it was not throttled", elapsed)
			}
			t.Logf("%s: throttled re-registration assigned after %s", tr.name, elapsed.Round(100*time.Millisecond))
		})
	}
}

// TestNodeSDKMQTTPolling: with --azure-202 every register is answered 202
// with an operationId, so the SDK polls on the operation status topic
// until assigned, over both MQTT transports.
func TestNodeSDKMQTTPolling(t *testing.T) {
	srv, mqttPort := startMQTTServer(t, "--azure-202")
	addHubs(t, srv, "hub-poll.example.net")
	gkey := groupKey(t, srv, &enrollment.EnrollmentGroup{EnrollmentGroupID: "node-mqtt-poll"})
	for _, tr := range nodeTransports(srv, mqttPort) {
		t.Run(tr.name, func(t *testing.T) {
			regID := "node-mqtt-poll-" + strings.ToLower(tr.name)
			res := nodeDevice(t, srv, srv.IDScope(), regID, "TRANSPORT="+tr.name, "PORT="+tr.port, deviceKey(gkey, regID), `PAYLOAD={"model":"m1"}`)
			if !res.OK || res.Status != "assigned" || res.AssignedHub != "hub-poll.example.net" || res.DeviceID != regID {
				t.Fatalf("polled registration did not end assigned: %+v\n%s", res, srv.Logs())
			}
		})
	}
}
