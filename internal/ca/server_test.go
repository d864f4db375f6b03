package ca

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestServerCertificateHandshake runs real TLS on 127.0.0.1: the client
// trusts only Roots(); the server also asks for a client certificate issued
// by SignCSR, as a device renewing over mTLS would present.
func TestServerCertificateHandshake(t *testing.T) {
	c, _ := newTestCA(t, nil)
	srvCert, err := c.ServerCertificate([]string{"localhost", "127.0.0.1", "[::1]"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := srvCert.Leaf.ExtKeyUsage; len(got) != 1 || got[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("server EKU %v", got)
	}
	if len(srvCert.Certificate) != 2 {
		t.Fatalf("chain has %d certificates, want leaf+intermediate", len(srvCert.Certificate))
	}
	key := testKey(t, "p256")
	dev, err := c.SignCSR(makeCSR(t, key, "dev", nil), LeafPolicy{RegistrationID: "dev", DeviceID: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	devCert := tls.Certificate{Certificate: dev.Chain[:2], PrivateKey: key}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{srvCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.Roots(),
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			peer <- "accept: " + err.Error()
			return
		}
		defer conn.Close()
		tc := conn.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			peer <- "handshake: " + err.Error()
			return
		}
		peer <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
		_, _ = io.WriteString(tc, "ok")
	}()

	for _, name := range []string{"localhost"} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{
			RootCAs: c.Roots(), ServerName: name, Certificates: []tls.Certificate{devCert}, MinVersion: tls.VersionTLS12,
		})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		buf := make([]byte, 2)
		_, _ = io.ReadFull(conn, buf)
		conn.Close()
		if got := <-peer; got != "dev" {
			t.Fatalf("server saw %q", got)
		}
	}
	// The IP SANs verify too.
	for _, host := range []string{"127.0.0.1", "::1"} {
		if err := srvCert.Leaf.VerifyHostname(host); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if err := srvCert.Leaf.VerifyHostname("example.com"); err == nil {
		t.Error("verifies for a host it was not issued for")
	}
}

func TestServerCertificateHosts(t *testing.T) {
	c, _ := newTestCA(t, nil)
	tests := []struct {
		name  string
		hosts []string
		want  error
	}{
		{"dns and ip", []string{"zdps.example.com", "10.1.2.3"}, nil},
		{"wildcard", []string{"*.zdps.example"}, nil},
		{"none", nil, ErrInvalidHost},
		{"empty", []string{""}, ErrInvalidHost},
		{"space inside", []string{"bad host"}, ErrInvalidHost},
		{"url", []string{"https://zdps.example"}, ErrInvalidHost},
		{"label too long", []string{string(make([]byte, 64))}, ErrInvalidHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.ServerCertificate(tt.hosts, time.Hour)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}
