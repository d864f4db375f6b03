package mqttapi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

var (
	// ErrPacketTooLarge: a packet announced a remaining length above the
	// limit; nothing of it was allocated.
	ErrPacketTooLarge = errors.New("mqttapi: packet too large")
	// ErrMalformed: bytes that are not an MQTT 3.1.1 packet.
	ErrMalformed = errors.New("mqttapi: malformed packet")
)

// ReadPacket reads one MQTT 3.1.1 control packet of at most max bytes of
// remaining length. Unlike packets.ReadPacket it checks the announced
// length before it allocates, so that a device announcing 256 MB pins
// nothing. io errors are returned as they are (io.EOF between packets).
func ReadPacket(r *bufio.Reader, max int) (packets.ControlPacket, error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	n, err := remainingLength(r)
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("%w: %d bytes announced, the limit is %d", ErrPacketTooLarge, n, max)
	}
	fh := packets.FixedHeader{
		MessageType:     first >> 4,
		Dup:             first&0x08 != 0,
		Qos:             (first >> 1) & 0x03,
		Retain:          first&0x01 != 0,
		RemainingLength: n,
	}
	if fh.MessageType == 0 || fh.MessageType > packets.Disconnect {
		return nil, fmt.Errorf("%w: packet type %d", ErrMalformed, fh.MessageType)
	}
	// Only PUBLISH has free flags; the others have fixed ones (§2.2.2).
	if want := fixedFlags(fh.MessageType); fh.MessageType != packets.Publish && first&0x0f != want {
		return nil, fmt.Errorf("%w: flags 0x%x of packet type %d", ErrMalformed, first&0x0f, fh.MessageType)
	}
	cp, err := packets.NewControlPacketWithHeader(fh)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if err := unpack(cp, body); err != nil {
		return nil, err
	}
	return cp, nil
}

// unpack decodes a packet's body; the codec's own decoder reads past short
// bodies with io errors, which here mean a malformed packet.
func unpack(cp packets.ControlPacket, body []byte) (err error) {
	if p, ok := cp.(*packets.PublishPacket); ok && p.Qos == 3 {
		return fmt.Errorf("%w: QoS 3", ErrMalformed)
	}
	if p, ok := cp.(*packets.PublishPacket); ok {
		return unpackPublish(p, body)
	}
	rd := bytes.NewReader(body)
	if err := cp.Unpack(rd); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	// A packet must be used up (a SUBSCRIBE's topic list must end exactly
	// at its length).
	if rd.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the packet", ErrMalformed, rd.Len())
	}
	return nil
}

func fixedFlags(t byte) byte {
	switch t {
	case packets.Pubrel, packets.Subscribe, packets.Unsubscribe:
		return 0x02
	}
	return 0
}

// remainingLength decodes the fixed header's variable-length integer: at
// most four bytes (MQTT 3.1.1 §2.2.3).
func remainingLength(r *bufio.Reader) (int, error) {
	var n, shift int
	for i := 0; i < 4; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		n |= int(b&0x7f) << shift
		if b&0x80 == 0 {
			return n, nil
		}
		shift += 7
	}
	return 0, fmt.Errorf("%w: remaining length longer than four bytes", ErrMalformed)
}

// unpackPublish decodes a PUBLISH body: the codec's own decoder takes an
// empty payload (a register of an older SDK) for a short read.
func unpackPublish(p *packets.PublishPacket, body []byte) error {
	if len(body) < 2 {
		return fmt.Errorf("%w: PUBLISH without a topic", ErrMalformed)
	}
	n := int(body[0])<<8 | int(body[1])
	body = body[2:]
	if len(body) < n {
		return fmt.Errorf("%w: PUBLISH topic longer than the packet", ErrMalformed)
	}
	p.TopicName, body = string(body[:n]), body[n:]
	if p.Qos > 0 {
		if len(body) < 2 {
			return fmt.Errorf("%w: PUBLISH without a packet identifier", ErrMalformed)
		}
		p.MessageID, body = uint16(body[0])<<8|uint16(body[1]), body[2:]
	}
	p.Payload = body
	return nil
}
