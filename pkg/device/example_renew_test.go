package device_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/zdps/zdps/pkg/device"
)

// A device registers once with its key and a CSR, keeps the issued
// certificate and key, and later renews the certificate over mutual TLS
// with it: same device ID and hub, a new serial and key. (Not run: it
// needs a zdps serve; see TestRealServerRenewal.)
func ExampleRenew() {
	ctx := context.Background()
	base := device.Config{Endpoint: "dps.example.net", IDScope: "0ne00000001", RegistrationID: "sensor-17", RootCAs: x509.NewCertPool()}

	first := base
	first.SymmetricKey = []byte("the device key, base64-decoded..")
	first.GenerateKey = true
	res, err := device.Register(ctx, first)
	if err != nil {
		fmt.Println("registration failed:", err)
		return
	}
	cert, err := res.TLSCertificate() // persist it; use it at the hub
	if err != nil {
		fmt.Println(err)
		return
	}

	// When the certificate nears expiry:
	if time.Until(cert.Leaf.NotAfter) < 30*24*time.Hour {
		renew := base
		renew.Certificate = &cert
		res, err = device.Renew(ctx, renew)
		if err != nil {
			fmt.Println("renewal failed:", err)
			return
		}
		fmt.Println(res.DeviceID, res.AssignedHub, res.IssuedCertificateChain[0].NotAfter)
	}
}
