package device_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/zdps/zdps/pkg/device"
)

// fakeDPS stands in for a provisioning service: it answers the register
// call of one device with its assignment.
func fakeDPS() *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		if r.Header.Get("Authorization") == "" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errorCode":401002,"trackingId":"t-1","message":"Unauthorized"}`)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"operationId": "op-1",
			"status":      "assigned",
			"registrationState": map[string]any{
				"registrationId": "sensor-17", "status": "assigned",
				"assignedHub": "hub-eu.example.net", "deviceId": "sensor-17", "substatus": "initialAssignment",
			},
		})
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	return srv
}

// A device with a symmetric key registers and learns its hub.
func ExampleRegister() {
	srv := fakeDPS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	res, err := device.Register(context.Background(), device.Config{
		Endpoint:       srv.Listener.Addr().String(), // "dps.example.net" in production
		IDScope:        "0ne00000001",
		RegistrationID: "sensor-17",
		SymmetricKey:   []byte("the device key, base64-decoded.."),
		RootCAs:        roots,
	})
	if err != nil {
		fmt.Println("registration failed:", err)
		return
	}
	fmt.Println(res.Status, res.AssignedHub, res.DeviceID, res.Substatus)
	// Output: assigned hub-eu.example.net sensor-17 initialAssignment
}

// Refusals are *device.Error values that match the package's sentinels.
func ExampleError() {
	srv := fakeDPS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	cert, _ := exampleCertificate()
	_, err := device.Register(context.Background(), device.Config{
		Endpoint:    srv.Listener.Addr().String(),
		IDScope:     "0ne00000001",
		Certificate: cert, // X.509: no Authorization header, which this fake refuses
		RootCAs:     roots,
	})
	var e *device.Error
	if errors.Is(err, device.ErrUnauthorized) && errors.As(err, &e) {
		fmt.Println("unauthorized:", e.ErrorCode, e.TrackingID)
	}
	// Output: unauthorized: 401002 t-1
}

// exampleCertificate is a self-signed device certificate with CN
// sensor-17.
func exampleCertificate() (*tls.Certificate, error) {
	k, err := device.GenerateKey()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sensor-17"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, nil
}

// The same registration over MQTT (port 8883), as a microcontroller's SDK
// would run it; device.TransportMQTTWS runs it over a WebSocket on 443.
func ExampleConfig_mqtt() {
	res, err := device.Register(context.Background(), device.Config{
		Endpoint:       "dps.example.net",
		Transport:      device.TransportMQTT,
		IDScope:        "0ne00000001",
		RegistrationID: "sensor-17",
		SymmetricKey:   []byte("the device key, base64-decoded.."),
		GenerateKey:    true, // a CSR: the result carries the operational certificate
	})
	if err != nil {
		fmt.Println("registration failed:", err)
		return
	}
	fmt.Println(res.AssignedHub, res.DeviceID, len(res.IssuedCertificateChain))
}
