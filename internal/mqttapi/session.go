package mqttapi

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/zdps/zdps/internal/devicewire"
	"github.com/zdps/zdps/internal/provisioning/limits"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// CONNACK return codes (MQTT 3.1.1 §3.2.2.3).
const (
	connAccepted          = 0
	connBadProtocol       = 1
	connIDRejected        = 2
	connUnavailable       = 3
	connBadUserOrPassword = 4
	connNotAuthorized     = 5
)

// session is one device connection after its TLS handshake.
type session struct {
	s      *Server
	conn   net.Conn
	remote string
	// transport is mqtt or mqtt-ws.
	transport string
	r         *bufio.Reader
	// req is the request every PUBLISH builds on: the credentials of the
	// CONNECT.
	req port.Request

	wmu sync.Mutex // serialises writes

	// keepAlive is 1.5 × the client's value (0: none).
	keepAlive time.Duration
	// mu guards the deadline state below.
	mu         sync.Mutex
	inFlight   int
	lastPacket time.Time
	lastAnswer time.Time
	sem        chan struct{}
	reqs       sync.WaitGroup
	// done is closed when the connection ends; cancel closes it.
	done   <-chan struct{}
	cancel context.CancelFunc
	// handedOff is set (by the reading goroutine) once the first request
	// took the connection's goroutine and another reads on.
	handedOff bool
	// forms remembers the CSR form of operations this connection started
	// and got 202 for, so that its polls answer the certificate as the
	// register asked (the stored operation does not know). A poll on
	// another connection (or HTTPS) answers issuedCertificateChain.
	forms map[string]string
}

// gone reports whether the connection has ended.
func (ss *session) gone() bool {
	select {
	case <-ss.done:
		return true
	default:
		return false
	}
}

// maxForms bounds session.forms: a device has one registration running.
const maxForms = 8

func (ss *session) rememberForm(opID, form string) {
	if form != dps.CSRFormPEM && form != dps.CSRFormDER {
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.forms == nil || len(ss.forms) >= maxForms {
		ss.forms = map[string]string{}
	}
	ss.forms[opID] = form
}

func (ss *session) formOf(opID string) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.forms[opID]
}

// serveConn runs one connection: CONNECT, then packets until the device
// leaves, breaks a rule or idles. transport names it in the audit trail
// and metrics: mqtt or mqtt-ws.
func (s *Server) serveConn(ctx context.Context, c net.Conn, transport, remote string, certs []*x509.Certificate) {
	if s.cfg.OnConnection != nil {
		s.cfg.OnConnection(1)
		defer s.cfg.OnConnection(-1)
	}
	ctx, cancel := context.WithCancel(ctx)
	ss := &session{s: s, conn: c, remote: remote, transport: transport, r: bufio.NewReaderSize(c, 4<<10), sem: make(chan struct{}, s.cfg.MaxInFlight), done: ctx.Done(), cancel: cancel}
	defer func() {
		cancel()
		_ = c.Close()
		ss.reqs.Wait()
	}()
	_ = c.SetReadDeadline(time.Now().Add(s.cfg.ConnectTimeout))
	if !ss.connect(ctx, certs) {
		return
	}
	ss.loop(ctx)
}

// connect reads and answers the CONNECT; false: the connection ends.
func (ss *session) connect(ctx context.Context, certs []*x509.Certificate) bool {
	s := ss.s
	cp, err := ReadPacket(ss.r, s.cfg.MaxPacketBytes)
	if err != nil {
		ss.readFault(ctx, "before CONNECT", err)
		return false
	}
	c, ok := cp.(*packets.ConnectPacket)
	if !ok {
		s.fault(ctx, "no connect", ss.remote, nil, "packet", packetName(cp))
		return false
	}
	if c.ProtocolName != "MQTT" || c.ProtocolVersion != 4 {
		if c.ProtocolName == "MQTT" || c.ProtocolName == "MQIsdp" {
			return ss.refuse(ctx, connBadProtocol, "protocol level", fmt.Errorf("protocol %s level %d; only MQTT 3.1.1 (level 4) is served", c.ProtocolName, c.ProtocolVersion))
		}
		s.fault(ctx, "protocol", ss.remote, nil)
		return false
	}
	if c.ReservedBit != 0 || (c.PasswordFlag && !c.UsernameFlag) || (!c.WillFlag && (c.WillQos != 0 || c.WillRetain)) {
		s.fault(ctx, "connect flags", ss.remote, nil)
		return false
	}
	if c.WillFlag {
		// DPS keeps no will: nothing would ever publish it.
		return ss.refuse(ctx, connNotAuthorized, "will", errors.New("a will is not supported"))
	}
	if err := enrollment.ValidateRegistrationID(c.ClientIdentifier); err != nil {
		return ss.refuse(ctx, connIDRejected, "client id", err)
	}
	if !c.UsernameFlag {
		return ss.refuse(ctx, connBadUserOrPassword, "user name", errors.New("no user name"))
	}
	u, err := dps.ParseMQTTUserName(c.Username)
	if err != nil {
		return ss.refuse(ctx, connBadUserOrPassword, "user name", err)
	}
	if !strings.EqualFold(u.RegistrationID, c.ClientIdentifier) {
		return ss.refuse(ctx, connBadUserOrPassword, "user name", errors.New("registration ID of the user name differs from the client ID"))
	}
	if !strings.EqualFold(u.IDScope, s.cfg.IDScope) {
		return ss.refuse(ctx, connNotAuthorized, "id scope", devicewire.ErrScopeNotFound)
	}
	pw := strings.TrimSpace(string(c.Password))
	if pw != "" && !strings.HasPrefix(pw, "SharedAccessSignature ") {
		return ss.refuse(ctx, connBadUserOrPassword, "password", errors.New("password is not a SharedAccessSignature"))
	}
	ss.req = port.Request{IDScope: s.cfg.IDScope, RegistrationID: c.ClientIdentifier, Authorization: pw, ClientCertificates: certs, RemoteAddr: ss.remote, Transport: ss.transport}
	if pw == "" && len(certs) == 0 {
		return ss.refuse(ctx, connNotAuthorized, "no credential", errors.New("neither a SAS password nor a client certificate"))
	}
	actx, cancel := context.WithTimeout(ctx, requestTimeout)
	err = s.cfg.Provisioner.Authenticate(actx, &ss.req)
	cancel()
	if err != nil {
		code := byte(connUnavailable)
		switch status, _, _ := devicewire.Classify(err); {
		case status == http.StatusUnauthorized, status == http.StatusNotFound:
			code = connNotAuthorized
		case status < 500 && status != http.StatusTooManyRequests:
			code = connBadUserOrPassword
		case errors.Is(err, store.ErrBusy), status == http.StatusServiceUnavailable, status == http.StatusTooManyRequests:
		default:
			s.log.ErrorContext(ctx, "mqtt connect: authentication failed", "remote_addr", ss.remote, "error", err)
		}
		return ss.refuse(ctx, code, "authentication", err)
	}
	if c.Keepalive > 0 {
		ss.keepAlive = time.Duration(c.Keepalive) * time.Second * 3 / 2
	}
	ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
	ack.ReturnCode = connAccepted
	if err := ss.write(ack); err != nil {
		return false
	}
	now := time.Now()
	ss.mu.Lock()
	ss.lastPacket, ss.lastAnswer = now, now
	ss.mu.Unlock()
	ss.armRead()
	return true
}

// refuse answers a CONNACK with a refusal code and ends the connection.
func (ss *session) refuse(ctx context.Context, code byte, kind string, cause error) bool {
	ss.s.fault(ctx, "connect refused: "+kind, ss.remote, cause, "connack", code)
	ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
	ack.ReturnCode = code
	_ = ss.write(ack)
	return false
}

func (ss *session) readFault(ctx context.Context, when string, err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return // the device left (or shutdown)
	case errors.As(err, &ne) && ne.Timeout():
		ss.s.fault(ctx, "timeout "+when, ss.remote, nil)
	case errors.Is(err, ErrPacketTooLarge):
		ss.s.fault(ctx, "packet too large", ss.remote, err)
	case errors.Is(err, ErrMalformed):
		ss.s.fault(ctx, "packet malformed", ss.remote, err)
	default:
		ss.s.fault(ctx, "read failed", ss.remote, err)
	}
}

// armRead sets the read deadline: keep-alive from the last packet and,
// with no request running, the idle timeout from the last answer.
func (ss *session) armRead() {
	ss.mu.Lock()
	var d time.Time
	if ss.keepAlive > 0 {
		d = ss.lastPacket.Add(ss.keepAlive)
	}
	if ss.inFlight == 0 {
		if idle := ss.lastAnswer.Add(ss.s.cfg.IdleTimeout); d.IsZero() || idle.Before(d) {
			d = idle
		}
	}
	ss.mu.Unlock()
	_ = ss.conn.SetReadDeadline(d)
}

// write sends one packet within the write timeout.
func (ss *session) write(p packets.ControlPacket) error {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	_ = ss.conn.SetWriteDeadline(time.Now().Add(ss.s.cfg.WriteTimeout))
	err := p.Write(ss.conn)
	if err != nil {
		// A device that does not read its answers loses its connection.
		_ = ss.conn.Close()
	}
	return err
}

// loop serves packets after the CONNACK.
func (ss *session) loop(ctx context.Context) {
	s := ss.s
	for {
		cp, err := ReadPacket(ss.r, s.cfg.MaxPacketBytes)
		if err != nil {
			ss.readFault(ctx, "idle or keep-alive", err)
			return
		}
		ss.mu.Lock()
		ss.lastPacket = time.Now()
		ss.mu.Unlock()
		switch p := cp.(type) {
		case *packets.PingreqPacket:
			if ss.write(packets.NewControlPacket(packets.Pingresp)) != nil {
				return
			}
		case *packets.DisconnectPacket:
			return
		case *packets.SubscribePacket:
			if !ss.subscribe(ctx, p) {
				return
			}
		case *packets.UnsubscribePacket:
			ack := packets.NewControlPacket(packets.Unsuback).(*packets.UnsubackPacket)
			ack.MessageID = p.MessageID
			if ss.write(ack) != nil {
				return
			}
		case *packets.PublishPacket:
			run, ok := ss.publish(ctx, p)
			if !ok {
				return
			}
			if !ss.handedOff {
				// The first request runs on this goroutine, whose stack
				// grew in the TLS handshake and the CONNECT, and a new
				// goroutine reads on: a fresh goroutine per request would
				// grow its stack through the pipeline again (~2% of the
				// CPU of a registration). This one returns when the
				// reading ends, as serveConn's callers expect.
				ss.handedOff = true
				read := make(chan struct{})
				go func() {
					defer close(read)
					ss.armRead()
					ss.loop(ctx)
					ss.cancel() // the device left: cancel what still runs
				}()
				run()
				<-read
				return
			}
			go run()
		case *packets.PubackPacket:
			// Answers go out at QoS 0; a stray PUBACK is harmless.
		default:
			s.fault(ctx, "packet not allowed", ss.remote, nil, "packet", packetName(cp))
			return
		}
		ss.armRead()
	}
}

// subscribe grants the response filter only; any other filter closes the
// connection (3.1.1's SUBACK 0x80 would leave a device waiting for
// answers that never come).
func (ss *session) subscribe(ctx context.Context, p *packets.SubscribePacket) bool {
	if len(p.Topics) == 0 || p.Qos != 1 {
		ss.s.fault(ctx, "subscribe malformed", ss.remote, nil)
		return false
	}
	ack := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
	ack.MessageID = p.MessageID
	for i, t := range p.Topics {
		if t != dps.MQTTResponseFilter || p.Qoss[i] > 2 {
			ss.s.fault(ctx, "subscribe forbidden", ss.remote, nil, "filter", truncate(t))
			return false
		}
		ack.ReturnCodes = append(ack.ReturnCodes, min(p.Qoss[i], 1))
	}
	return ss.write(ack) == nil
}

// publish admits one request and returns its run (nil for none); false
// closes the connection.
func (ss *session) publish(ctx context.Context, p *packets.PublishPacket) (func(), bool) {
	if p.Qos > 1 || p.Retain {
		ss.s.fault(ctx, "publish qos or retain", ss.remote, nil, "qos", p.Qos)
		return nil, false
	}
	t, err := dps.ParseMQTTRequestTopic(p.TopicName)
	if err != nil {
		ss.s.fault(ctx, "publish forbidden", ss.remote, err, "topic", truncate(p.TopicName))
		return nil, false
	}
	if p.Qos == 1 {
		ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
		ack.MessageID = p.MessageID
		if ss.write(ack) != nil {
			return nil, false
		}
	}
	// At most MaxInFlight requests: the next packet is not read before one
	// ends (TCP pushes back on the device); keep-alive is not enforced
	// while the device waits for us.
	ss.mu.Lock()
	ss.inFlight++
	ss.mu.Unlock()
	_ = ss.conn.SetReadDeadline(time.Time{})
	select {
	case ss.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, false
	}
	ss.reqs.Add(1)
	return func() {
		defer ss.reqs.Done()
		defer func() { <-ss.sem }()
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		status, retry, body := ss.s.answer(rctx, ss, t, p.Payload)
		cancel()
		out := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		out.TopicName = dps.MQTTResponse{Status: status, RID: t.RID, RetryAfter: retry}.Topic()
		out.Payload = body
		err := ss.write(out)
		ss.mu.Lock()
		ss.inFlight--
		ss.lastAnswer = time.Now()
		ss.lastPacket = ss.lastAnswer // the device was waiting, not idle
		ss.mu.Unlock()
		if err == nil {
			ss.armRead()
		}
	}, true
}

// answer runs a request through the pipeline and renders the answer: the
// status of the response topic, its retry-after ("" for none) and the
// same JSON body as HTTPS.
func (s *Server) answer(ctx context.Context, ss *session, t dps.MQTTRequest, payload []byte) (int, string, []byte) {
	req := ss.req // a copy: the body's parts are per request
	switch t.Kind {
	case dps.MQTTRegister:
		// Older SDKs send an empty or blank body: the CONNECT named the
		// registration ID.
		dr, err := devicewire.DecodeRegister(payload, &req, s.cfg.MaxPayloadBytes, false)
		if err != nil {
			return s.refusal(ctx, ss, err)
		}
		op, err := s.cfg.Provisioner.Register(ctx, &req)
		if err != nil {
			return s.refusal(ctx, ss, err)
		}
		if s.cfg.AzureCompatible202 || op.Status == enrollment.RegistrationAssigning {
			ss.rememberForm(op.OperationID, dr.CSRForm())
			return http.StatusAccepted, s.retryAfter, mustJSON(&devicewire.RegistrationOperationStatus{OperationID: op.OperationID, Status: enrollment.RegistrationAssigning})
		}
		return http.StatusOK, "", mustJSON(devicewire.OperationStatusIn(op, dr.CSRForm()))
	default:
		// The Node SDK sends {} with a poll, others nothing: ignored.
		op, err := s.cfg.Provisioner.OperationStatus(ctx, &req, t.OperationID)
		if err != nil {
			return s.refusal(ctx, ss, err)
		}
		if op.Status == enrollment.RegistrationAssigning {
			ra := s.retryAfter
			if op.RetryAfter > s.cfg.RetryAfter {
				ra = devicewire.RetryAfterSeconds(op.RetryAfter, s.maxWait)
			}
			return http.StatusAccepted, ra, mustJSON(devicewire.OperationStatus(op))
		}
		return http.StatusOK, "", mustJSON(devicewire.OperationStatusIn(op, ss.formOf(op.OperationID)))
	}
}

// refusal renders an error as HTTPS does: the DPS error body, the status
// and, for 429 and 503, a retry-after.
func (s *Server) refusal(ctx context.Context, ss *session, err error) (int, string, []byte) {
	var ch *port.TPMChallenge
	if errors.As(err, &ch) {
		// TPM is not offered over MQTT (nor by Azure): no challenge.
		err = fmt.Errorf("%w: TPM attestation is served over HTTPS only", devicewire.ErrBadRequest)
	}
	status, code, msg := devicewire.Classify(err)
	id := newTrackingID()
	var fault *devicewire.Fault
	switch {
	case ss.gone():
		// The device left (or the server stops) while its request ran:
		// cancelled work is no server fault, and nobody reads the answer.
		s.fault(ctx, "client gone", ss.remote, err, "tracking_id", id)
	case errors.As(err, &fault):
		s.fault(ctx, fault.Kind, ss.remote, fault.Cause, "tracking_id", id, "reason", fault.Msg)
	case errors.Is(err, store.ErrBusy):
		s.log.WarnContext(ctx, "mqtt device request refused: store busy", "tracking_id", id, "status", status, "error", err)
	case status >= 500:
		s.log.ErrorContext(ctx, "mqtt device request failed", "tracking_id", id, "status", status, "error", err)
	}
	var retry string
	switch d := limits.RetryAfterOf(err); {
	case status == http.StatusTooManyRequests && d > 0:
		retry = devicewire.RetryAfterSeconds(d, s.maxWait)
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		retry = s.retryAfter
	}
	return status, retry, mustJSON(dps.NewErrorBody(code, id, msg, s.cfg.Now()))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(fmt.Sprintf(`{"errorCode":%d,"message":%q}`, dps.CodeInternal, devicewire.MsgInternal))
	}
	return b
}

func packetName(cp packets.ControlPacket) string {
	return strings.TrimPrefix(fmt.Sprintf("%T", cp), "*packets.")
}

// truncate keeps a logged topic short (devices choose them).
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
