// Package zdpstest runs a real `zdps serve` process for end-to-end tests:
// built once per test binary from this checkout, on a free 127.0.0.1 port,
// with its own data directory; it can be killed (SIGKILL) and restarted on
// the same data to test crash recovery.
package zdpstest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of a zdps binary built from this checkout.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "zdpsbin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "zdps")
		cmd := exec.Command("go", "build", "-tags", buildTags, "-o", binPath, "github.com/zdps/zdps/cmd/zdps")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// RepoRoot is the checkout's top directory.
func RepoRoot() string { return repoRoot() }

// Server is one running zdps process.
type Server struct {
	t       testing.TB
	DataDir string
	Port    string
	Args    []string
	cmd     *exec.Cmd
	logs    *syncBuffer
	done    chan struct{}
}

// Start runs `zdps serve` with extra args and waits until it answers.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	s := &Server{t: t, Args: extra}
	t.Cleanup(func() { s.Stop() })
	// The port is free when picked, but another process's ephemeral port
	// (a :0 listener, an outgoing connection) may take it before zdps
	// binds it: then another one is picked.
	for attempt := 1; ; attempt++ {
		s.DataDir, s.Port = t.TempDir(), freePort(t)
		s.launch()
		if s.wait(attempt < 5) {
			return s
		}
	}
}

func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func (s *Server) start() {
	s.t.Helper()
	s.launch()
	s.wait(false)
}

// launch starts the process.
func (s *Server) launch() {
	s.t.Helper()
	args := append([]string{"serve", "--data-dir", s.DataDir, "--listen", "127.0.0.1:" + s.Port, "--mqtt-listen", "127.0.0.1:0",
		"--hostname", "127.0.0.1:" + s.Port, "--log-format", "json"}, s.Args...)
	s.cmd = exec.Command(Binary(s.t), args...)
	s.logs = &syncBuffer{}
	s.cmd.Stdout = s.logs
	s.cmd.Stderr = s.logs
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)
}

// wait waits until the process answers (true), failing the test if it
// exits, unless portRetry and it exited because its port was taken
// (false).
func (s *Server) wait(portRetry bool) bool {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			if portRetry && strings.Contains(s.logs.String(), "address already in use") {
				return false
			}
			s.t.Fatalf("zdps serve exited at start:\n%s", s.logs.String())
		default:
		}
		if _, err := os.Stat(filepath.Join(s.DataDir, "ca-bundle.pem")); err == nil {
			if c, err := s.clientOrErr(); err == nil && c.Health(context.Background()) == nil {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("zdps serve did not become healthy:\n%s", s.logs.String())
	return false
}

// Kill ends the process with SIGKILL, as a crash would.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
	}
}

// Stop ends the process with SIGTERM (graceful shutdown).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.Kill()
	}
}

// Restart starts the server again on the same data directory and port.
func (s *Server) Restart() { s.t.Helper(); s.Stop(); s.start() }

// Logs is everything the process wrote so far.
func (s *Server) Logs() string { return s.logs.String() }

// LogContains reports whether the log has, or within a few seconds gets, a
// line containing substr: a request's log line may be written just after
// its answer.
func (s *Server) LogContains(substr string) bool {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(s.logs.String(), substr) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// Addr is host:port of the listener.
func (s *Server) Addr() string { return "127.0.0.1:" + s.Port }

// CAFile is the CA bundle the server's TLS certificate chains to.
func (s *Server) CAFile() string { return filepath.Join(s.DataDir, "ca-bundle.pem") }

// ConnectionString is the owner connection string the server wrote.
func (s *Server) ConnectionString() string {
	b, err := os.ReadFile(filepath.Join(s.DataDir, "service-connection-string"))
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// RootCAs is a pool with the server's CA bundle.
func (s *Server) RootCAs() *x509.CertPool {
	b, err := os.ReadFile(s.CAFile())
	if err != nil {
		s.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return pool
}

func (s *Server) clientOrErr() (*client.Client, error) {
	return client.New(client.Config{ConnectionString: s.ConnectionString(), RootCAs: s.RootCAs()})
}

// Client is a service API client with the owner policy.
func (s *Server) Client() *client.Client {
	s.t.Helper()
	c, err := s.clientOrErr()
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// IDScope of the instance.
func (s *Server) IDScope() string {
	st, err := s.Client().GetSettings(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return st.IDScope
}

// SymmetricKeyEnrollment creates an individual symmetric-key enrollment
// with generated keys and returns its primary key, decoded, for a device
// to register with.
func (s *Server) SymmetricKeyEnrollment(regID string) []byte {
	s.t.Helper()
	ctx := context.Background()
	c := s.Client()
	if _, err := c.PutEnrollment(ctx, &enrollment.IndividualEnrollment{
		RegistrationID: regID, Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{}}},
	}, ""); err != nil {
		s.t.Fatal(err)
	}
	keys, err := c.EnrollmentKeys(ctx, regID)
	if err != nil {
		s.t.Fatal(err)
	}
	key, err := base64.StdEncoding.DecodeString(keys.SymmetricKey.PrimaryKey)
	if err != nil {
		s.t.Fatal(err)
	}
	return key
}

// HTTPClient trusts the server's CA.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig(s.RootCAs())}}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// MQTTAddr is host:port of the MQTT/TLS listener, from the startup log
// line (zdps serve listens on 127.0.0.1:0 here).
func (s *Server) MQTTAddr() string {
	s.t.Helper()
	const key = `"mqtt_addr":"`
	logs := s.logs.String()
	i := strings.LastIndex(logs, key)
	if i < 0 {
		s.t.Fatalf("no mqtt_addr in the log:\n%s", logs)
	}
	rest := logs[i+len(key):]
	return rest[:strings.IndexByte(rest, '"')]
}

// TLSConfig trusts the server's CA.
func (s *Server) TLSConfig() *tls.Config { return tlsConfig(s.RootCAs()) }

// PID is the server process's ID (for /proc measurements).
func (s *Server) PID() int { return s.cmd.Process.Pid }
