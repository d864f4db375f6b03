package mqttapi

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/zdps/zdps/internal/devicewire"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/ratelog"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Defaults of Config.
const (
	// DefaultMaxPacketBytes is Azure's device message limit (96 KB) plus
	// room for the topic and the packet's own fields.
	DefaultMaxPacketBytes = devicewire.DefaultMaxBodyBytes + 1<<10
	// DefaultConnectTimeout bounds the TLS handshake and the CONNECT.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultIdleTimeout closes a connection this long after its last
	// answer (or its CONNACK) when no request is running.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultWriteTimeout bounds every write: a device that stops reading
	// loses its connection instead of pinning a goroutine.
	DefaultWriteTimeout = 10 * time.Second
	// DefaultMaxConnections and DefaultMaxConnectionsPerIP bound open
	// connections, total and per source address.
	DefaultMaxConnections      = 10000
	DefaultMaxConnectionsPerIP = 100
	// DefaultMaxInFlight is how many requests of one connection run at
	// once; the connection's next PUBLISH is not read before one ends.
	DefaultMaxInFlight = 4
	// requestTimeout bounds one request's pipeline run on behalf of a
	// connection (the pipeline hands long assignments to the background
	// and answers 202 within its AssignWait).
	requestTimeout = 60 * time.Second
)

// Provisioner is the pipeline the MQTT API serves (*provisioning.Service).
type Provisioner interface {
	Authenticate(ctx context.Context, req *port.Request) error
	Register(ctx context.Context, req *port.Request) (*enrollment.Operation, error)
	OperationStatus(ctx context.Context, req *port.Request, operationID string) (*enrollment.Operation, error)
}

// Config configures the MQTT API. Provisioner, IDScope and Logger are
// required; TLS for Serve.
type Config struct {
	Provisioner Provisioner
	// IDScope of this instance; a CONNECT for another gets CONNACK 5.
	IDScope string
	Logger  *slog.Logger
	// TLS is the listener's TLS configuration (Serve): the HTTPS one,
	// which requests client certificates and leaves verifying them to the
	// pipeline.
	TLS *tls.Config
	// Now is the clock of error timestamps; time.Now when nil.
	Now func() time.Time
	// OnConnection, when set, is told of every device connection that
	// opens (+1) and closes (-1) (metrics).
	OnConnection func(delta int)

	// MaxPacketBytes bounds a packet's remaining length; a larger one
	// closes the connection before anything of it is read.
	MaxPacketBytes int
	// MaxPayloadBytes bounds the register body's payload
	// (devicewire.DefaultMaxPayloadBytes when 0).
	MaxPayloadBytes int64
	ConnectTimeout  time.Duration
	IdleTimeout     time.Duration
	WriteTimeout    time.Duration
	// MaxConnections and MaxConnectionsPerIP: a connection above either
	// is closed at once.
	MaxConnections      int
	MaxConnectionsPerIP int
	MaxInFlight         int

	// AzureCompatible202 and RetryAfter as deviceapi.Config's.
	AzureCompatible202 bool
	RetryAfter         time.Duration
}

// Server serves the DPS device API over MQTT 3.1.1, on its own TLS
// listener (Serve) and over WebSockets (ServeHTTP). It is safe for
// concurrent use.
type Server struct {
	cfg        Config
	log        *slog.Logger
	faults     *ratelog.Logger
	retryAfter string
	maxWait    time.Duration

	mu     sync.Mutex
	total  int
	perIP  map[string]int
	conns  map[net.Conn]struct{}
	lns    map[net.Listener]struct{}
	closed bool
	wg     sync.WaitGroup
}

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("mqttapi: server closed")

// New validates cfg and builds the server.
func New(cfg Config) (*Server, error) {
	var errs []error
	if cfg.Provisioner == nil {
		errs = append(errs, errors.New("Provisioner is required"))
	}
	if strings.TrimSpace(cfg.IDScope) == "" {
		errs = append(errs, errors.New("IDScope is required"))
	}
	if cfg.Logger == nil {
		errs = append(errs, errors.New("Logger is required"))
	}
	if cfg.MaxPacketBytes < 0 || cfg.MaxPayloadBytes < 0 || cfg.ConnectTimeout < 0 || cfg.IdleTimeout < 0 || cfg.WriteTimeout < 0 ||
		cfg.MaxConnections < 0 || cfg.MaxConnectionsPerIP < 0 || cfg.MaxInFlight < 0 {
		errs = append(errs, errors.New("limits must not be negative"))
	}
	setDefault(&cfg.MaxPayloadBytes, devicewire.DefaultMaxPayloadBytes)
	setDefault(&cfg.MaxPacketBytes, max(DefaultMaxPacketBytes, int(cfg.MaxPayloadBytes)+devicewire.BodyRoom+1<<10))
	setDefault(&cfg.ConnectTimeout, DefaultConnectTimeout)
	setDefault(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDefault(&cfg.WriteTimeout, DefaultWriteTimeout)
	setDefault(&cfg.MaxConnections, DefaultMaxConnections)
	setDefault(&cfg.MaxConnectionsPerIP, DefaultMaxConnectionsPerIP)
	setDefault(&cfg.MaxInFlight, DefaultMaxInFlight)
	setDefault(&cfg.RetryAfter, devicewire.DefaultRetryAfter)
	if int64(cfg.MaxPacketBytes) < cfg.MaxPayloadBytes+devicewire.BodyRoom {
		errs = append(errs, fmt.Errorf("MaxPacketBytes %d must be at least MaxPayloadBytes %d + %d for a CSR and the rest of the body", cfg.MaxPacketBytes, cfg.MaxPayloadBytes, devicewire.BodyRoom))
	}
	if cfg.MaxPacketBytes > 1<<28-1 {
		errs = append(errs, fmt.Errorf("MaxPacketBytes %d is above MQTT's 256 MB", cfg.MaxPacketBytes))
	}
	if cfg.RetryAfter < time.Second || cfg.RetryAfter > devicewire.MaxRetryAfter || cfg.RetryAfter%time.Second != 0 {
		errs = append(errs, fmt.Errorf("RetryAfter %s must be whole seconds from 1s to %s", cfg.RetryAfter, devicewire.MaxRetryAfter))
	}
	if cfg.RetryAfter >= cfg.IdleTimeout {
		errs = append(errs, fmt.Errorf("RetryAfter %s must be shorter than IdleTimeout %s: a device waits on its connection", cfg.RetryAfter, cfg.IdleTimeout))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("mqttapi: invalid config: %w", errors.Join(errs...))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		faults:     ratelog.New(cfg.Logger, devicewire.FaultLogLines, devicewire.FaultLogInterval),
		retryAfter: devicewire.RetryAfterSeconds(cfg.RetryAfter, 0),
		maxWait:    devicewire.MaxWait(cfg.IdleTimeout),
		perIP:      map[string]int{},
		conns:      map[net.Conn]struct{}{},
		lns:        map[net.Listener]struct{}{},
	}, nil
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Serve accepts TCP connections on ln and speaks MQTT over TLS on them
// until Close. ctx bounds the requests it runs.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.cfg.TLS == nil {
		return errors.New("mqttapi: Serve needs Config.TLS")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Resource exhaustion (EMFILE) passes: back off and go on.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !s.admit(c) {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			tc := tls.Server(c, s.cfg.TLS)
			s.track(c, tc)
			defer s.releaseFrom(tc, c.RemoteAddr().String())
			hctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
			err := tc.HandshakeContext(hctx)
			cancel()
			if err != nil {
				s.fault(ctx, "tls handshake failed", c.RemoteAddr().String(), err)
				return
			}
			st := tc.ConnectionState()
			s.serveConn(ctx, tc, "mqtt", c.RemoteAddr().String(), st.PeerCertificates)
		}()
	}
}

// admit counts a new connection against the limits, closing it when
// either is reached.
func (s *Server) admit(c net.Conn) bool {
	return s.admitFrom(c, c.RemoteAddr().String())
}

func (s *Server) admitFrom(c net.Conn, remote string) bool {
	ip := hostOf(remote)
	s.mu.Lock()
	ok := !s.closed && s.total < s.cfg.MaxConnections && s.perIP[ip] < s.cfg.MaxConnectionsPerIP
	if ok {
		s.total++
		s.perIP[ip]++
		s.conns[c] = struct{}{}
	}
	s.mu.Unlock()
	if !ok {
		_ = c.Close()
		s.faults.Log(context.Background(), slog.LevelInfo, "connection limit", "device connection refused: connection limit reached", "remote_addr", remote)
	}
	return ok
}

// track replaces the counted raw connection by the one to close at
// shutdown (closing either closes the socket; this keeps the map exact).
func (s *Server) track(raw, c net.Conn) {
	s.mu.Lock()
	delete(s.conns, raw)
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) releaseFrom(c net.Conn, remote string) {
	ip := hostOf(remote)
	_ = c.Close()
	s.mu.Lock()
	s.total--
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	delete(s.conns, c)
	s.mu.Unlock()
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// Connections is the number of open device connections.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Close stops the listeners and closes every connection; requests still
// running end with their connection. It waits for the connections'
// goroutines up to ctx.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for ln := range s.lns {
		_ = ln.Close()
	}
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fault logs a device's fault at INFO, rate-limited per kind; never a
// password or a SAS.
func (s *Server) fault(ctx context.Context, kind, remote string, err error, args ...any) {
	args = append([]any{"kind", kind, "remote_addr", remote}, args...)
	if err != nil {
		args = append(args, "error", err)
	}
	s.faults.Log(ctx, slog.LevelInfo, kind, "mqtt device connection refused or closed", args...)
}

func newTrackingID() string {
	var b [16]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return fmt.Sprintf("%x", time.Now().UnixNano())
	}
	return hex.EncodeToString(b[:])
}
