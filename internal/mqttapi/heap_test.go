package mqttapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/attestation/symmetric"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/provisioning/symkey"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/internal/testpki"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// TestIdleConnectionsHeap measures the Go heap an idle connection holds
// in the server: 2,000 of them (TCP without TLS, TLS without CONNECT,
// connected devices) against an in-process Server on the real pipeline.
func TestIdleConnectionsHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 connections")
	}
	const rawTCP, rawTLS, connected = 700, 700, 600
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := store.New(memory.New(), nil)
	devKey := bytes.Repeat([]byte{7}, 32)
	if _, err := st.Enrollments.Put(ctx, &enrollment.IndividualEnrollment{RegistrationID: "heap-1", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
		Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: base64.StdEncoding.EncodeToString(devKey), SecondaryKey: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, 32))}}}}, store.Condition{}); err != nil {
		t.Fatal(err)
	}
	att, err := symkey.NewAttestor(st, symmetric.Config{})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	svc, err := provisioning.New(provisioning.Config{Store: st, Attestors: map[string]port.Attestor{enrollment.AttestationSymmetricKey: att}, Allocator: hashed.New(), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	root := testpki.Issue(t, "heap-root", true, nil)
	leaf := testpki.Issue(t, "127.0.0.1", false, root, func(c *x509.Certificate) {
		c.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	srv, err := New(Config{Provisioner: svc, IDScope: "0ne00000001", Logger: logger, MaxConnectionsPerIP: 5000, ConnectTimeout: time.Minute,
		TLS: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key}}, ClientAuth: tls.RequestClientCert}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		if err := srv.Close(cctx); err != nil {
			t.Error(err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(root.Cert)
	clientTLS := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, ServerName: "127.0.0.1"}
	password := sas.Build(devKey, "0ne00000001/registrations/heap-1", "", time.Now().Add(time.Hour))

	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func(tlsToo, mqtt bool) error {
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		var c net.Conn = raw
		if tlsToo {
			tc := tls.Client(raw, clientTLS)
			if err := tc.Handshake(); err != nil {
				raw.Close()
				return err
			}
			c = tc
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
		if !mqtt {
			return nil
		}
		p := &packets.ConnectPacket{FixedHeader: packets.FixedHeader{MessageType: packets.Connect}, ProtocolName: "MQTT", ProtocolVersion: 4, CleanSession: true,
			ClientIdentifier: "heap-1", UsernameFlag: true, Username: "0ne00000001/registrations/heap-1/api-version=2019-03-31", PasswordFlag: true, Password: []byte(password)}
		if err := p.Write(c); err != nil {
			return err
		}
		var ack [4]byte
		if _, err := io.ReadFull(c, ack[:]); err != nil || ack[3] != 0 {
			return errors.Join(err, errors.New("no CONNACK 0"))
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, rawTCP+rawTLS+connected)
	sem := make(chan struct{}, 16)
	for i := 0; i < rawTCP+rawTLS+connected; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := dial(i >= rawTCP, i >= rawTCP+rawTLS); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every connection is accepted and counted before measuring.
	for deadline := time.Now().Add(10 * time.Second); srv.Connections() < rawTCP+rawTLS+connected; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", srv.Connections(), rawTCP+rawTLS+connected)
		}
		runtime.Gosched()
	}
	after := heap()
	total := rawTCP + rawTLS + connected
	// The client side of the connections lives in this process too.
	perConn := float64(int64(after)-int64(before)) / float64(total) / 1024
	t.Logf("%d idle connections (%d TCP, %d TLS without CONNECT, %d connected): heap in use %d KiB → %d KiB, %.1f KiB per connection, client and server sides together",
		total, rawTCP, rawTLS, connected, before>>10, after>>10, perConn)
	if perConn > 128 {
		t.Errorf("%.1f KiB of heap per idle connection", perConn)
	}
	// Every connection the devices close is forgotten: counted and tracked.
	for _, c := range conns {
		c.Close()
	}
	for deadline := time.Now().Add(20 * time.Second); ; runtime.Gosched() {
		srv.mu.Lock()
		n, tracked, ips := srv.total, len(srv.conns), len(srv.perIP)
		srv.mu.Unlock()
		if n == 0 && tracked == 0 && ips == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the devices left: %d counted, %d tracked, %d addresses", n, tracked, ips)
		}
	}
}
