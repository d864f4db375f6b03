package export

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/pkg/webhooksig"
)

// FileSink appends JSON Lines to a file and syncs it before confirming.
type FileSink struct {
	mu sync.Mutex
	f  *os.File
}

// OpenFile opens (or creates, 0600) path for appending.
func OpenFile(path string) (*FileSink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("export: open %s: %w", path, err)
	}
	return &FileSink{f: f}, nil
}

// Deliver writes one line per event and syncs.
func (s *FileSink) Deliver(_ context.Context, evs []audit.Sealed) error {
	var buf bytes.Buffer
	for i := range evs {
		b, err := line(&evs[i])
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.f.Write(buf.Bytes()); err != nil {
		return err
	}
	return s.f.Sync()
}

// Close closes the file.
func (s *FileSink) Close() error { return s.f.Close() }

// SyslogSink sends RFC 5424 messages over TCP or TLS, each framed with
// its length (RFC 6587 octet counting), the event's JSON as the message.
type SyslogSink struct {
	Addr string
	// TLS, when set, dials TLS (RFC 5425) with it.
	TLS *tls.Config
	// Hostname and AppName fill the header; "zdps" when empty.
	Hostname, AppName string
	// Timeout bounds a dial and a write (10 s when 0).
	Timeout time.Duration

	mu   sync.Mutex
	conn net.Conn
}

// facility local0 (16), severity notice (5) for events, warning (4) for
// alerts.
const (
	priEvent = 16*8 + 5
	priAlert = 16*8 + 4
)

func (s *SyslogSink) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: s.timeout()}
	if s.TLS != nil {
		td := &tls.Dialer{NetDialer: d, Config: s.TLS}
		return td.DialContext(ctx, "tcp", s.Addr)
	}
	return d.DialContext(ctx, "tcp", s.Addr)
}

func (s *SyslogSink) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 10 * time.Second
}

// Message is the RFC 5424 message of one event (without framing).
func (s *SyslogSink) Message(ev *audit.Sealed) ([]byte, error) {
	body, err := line(ev)
	if err != nil {
		return nil, err
	}
	pri := priEvent
	if ev.Action == audit.ActionAlert {
		pri = priAlert
	}
	host, app := nilvalue(s.Hostname), nilvalue(s.AppName)
	if s.AppName == "" {
		app = "zdps"
	}
	// <PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG; MSGID is the action
	// (printable ASCII, at most 32), the event ID goes in structured data
	// so receivers can deduplicate without parsing the JSON.
	msgID := ev.Action
	if len(msgID) > 32 {
		msgID = msgID[:32]
	}
	hdr := fmt.Sprintf("<%d>1 %s %s %s - %s [zdps@32473 id=\"%s\" seq=\"%d\"] ", pri, ev.Time.UTC().Format(time.RFC3339Nano), host, app, nilvalue(msgID), ev.ID, ev.Seq)
	return append([]byte(hdr), body...), nil
}

func nilvalue(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Deliver writes every message; on a write error the connection is
// dropped and the batch fails (it is sent again, whole).
func (s *SyslogSink) Deliver(ctx context.Context, evs []audit.Sealed) error {
	var buf bytes.Buffer
	for i := range evs {
		m, err := s.Message(&evs[i])
		if err != nil {
			return err
		}
		buf.WriteString(strconv.Itoa(len(m)))
		buf.WriteByte(' ')
		buf.Write(m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		c, err := s.dial(ctx)
		if err != nil {
			return err
		}
		s.conn = c
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.timeout()))
	if _, err := s.conn.Write(buf.Bytes()); err != nil {
		s.conn.Close()
		s.conn = nil
		return err
	}
	return nil
}

// Close closes the connection.
func (s *SyslogSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		err := s.conn.Close()
		s.conn = nil
		return err
	}
	return nil
}

// WebhookSink POSTs batches as a JSON array to an HTTPS URL, signed with
// the custom allocation webhook's scheme (X-Zdps-Timestamp,
// X-Zdps-Signature) when Secret is set. Any 2xx confirms the batch.
type WebhookSink struct {
	URL    string
	Secret []byte
	Client *http.Client
	Now    func() time.Time
}

// Deliver posts the batch.
func (s *WebhookSink) Deliver(ctx context.Context, evs []audit.Sealed) error {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i := range evs {
		b, err := line(&evs[i])
		if err != nil {
			return err
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
	}
	buf.WriteByte(']')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(buf.Bytes()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if len(s.Secret) > 0 {
		now := time.Now
		if s.Now != nil {
			now = s.Now
		}
		ts := now().Unix()
		req.Header.Set(webhooksig.HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(webhooksig.HeaderSignature, webhooksig.Sign(s.Secret, ts, buf.Bytes()))
	}
	c := s.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// Close does nothing.
func (s *WebhookSink) Close() error { return nil }
