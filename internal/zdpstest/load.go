package zdpstest

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/device"
)

// StartIn is Start on an existing data directory (a restored backup, the
// directory of a server that was stopped); the directory outlives the
// server.
func StartIn(t testing.TB, dataDir string, extra ...string) *Server {
	t.Helper()
	s := &Server{t: t, DataDir: dataDir, Port: freePort(t), Args: extra}
	s.start()
	t.Cleanup(func() { s.Stop() })
	return s
}

// Ack is one registration the server answered "assigned".
type Ack struct {
	RegistrationID, DeviceID, AssignedHub string
	// Leaf is the operational certificate issued from the device's CSR.
	Leaf *x509.Certificate
}

// Load registers the devices of a symmetric-key enrollment group in a loop
// from several goroutines, each device once, and records every
// registration the server acknowledged. Failures (a server killed or
// stopped under it) are counted, not fatal: what matters is what was
// acknowledged.
type Load struct {
	t      testing.TB
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	acks   []Ack
	failed int
	more   chan struct{} // closed and replaced on every ack
}

// LoadConfig configures StartLoad.
type LoadConfig struct {
	// Group and GroupKey (decoded) of a symmetric-key enrollment group.
	Group    string
	GroupKey []byte
	// Prefix starts every registration ID, so loads on one group do not
	// collide; IDs are Prefix-wNN-NNNNNN.
	Prefix string
	// Workers registering at once; 8 when 0.
	Workers int
}

// StartLoad starts registering devices on s until Stop.
func StartLoad(t testing.TB, s *Server, cfg LoadConfig) *Load {
	t.Helper()
	if cfg.Workers == 0 {
		cfg.Workers = 8
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{t: t, cancel: cancel, more: make(chan struct{})}
	scope, roots, addr := s.IDScope(), s.RootCAs(), s.Addr()
	for w := range cfg.Workers {
		l.wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("%s-w%02d-%06d", cfg.Prefix, w, i)
				res, err := device.Register(ctx, device.Config{
					Endpoint: addr, IDScope: scope, RegistrationID: id,
					GroupKey: cfg.GroupKey, GenerateKey: true, RootCAs: roots,
					MaxRetries: 2, MaxWait: 30 * time.Second,
				})
				if err != nil && ctx.Err() != nil {
					return // cut short by Stop: neither acknowledged nor failed
				}
				l.mu.Lock()
				if err != nil || res.Status != "assigned" || len(res.IssuedCertificateChain) == 0 {
					l.failed++
				} else {
					l.acks = append(l.acks, Ack{RegistrationID: id, DeviceID: res.DeviceID, AssignedHub: res.AssignedHub, Leaf: res.IssuedCertificateChain[0]})
					close(l.more)
					l.more = make(chan struct{})
				}
				l.mu.Unlock()
			}
		})
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

// Acked is every acknowledged registration so far, in the order of the
// acknowledgements.
func (l *Load) Acked() []Ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Ack(nil), l.acks...)
}

// WaitAcked waits until at least n registrations were acknowledged, and
// fails the test after timeout.
func (l *Load) WaitAcked(n int, timeout time.Duration) {
	l.t.Helper()
	deadline := time.After(timeout)
	for {
		l.mu.Lock()
		got, failed, more := len(l.acks), l.failed, l.more
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-more:
		case <-deadline:
			l.t.Fatalf("%d registrations acknowledged within %s (%d failed), want %d", got, timeout, failed, n)
		}
	}
}

// Stop ends the load, waits for the workers and returns how many
// registrations were acknowledged and how many failed.
func (l *Load) Stop() (acked, failed int) {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks), l.failed
}
