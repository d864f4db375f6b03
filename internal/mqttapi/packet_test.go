package mqttapi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/zdps/zdps/pkg/dps"
)

func TestReadPacket(t *testing.T) {
	encode := func(p packets.ControlPacket) []byte {
		var b bytes.Buffer
		if err := p.Write(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.TopicName, pub.Qos, pub.MessageID = "$dps/registrations/PUT/iotdps-register/?$rid=1", 1, 9
	empty := encode(pub)
	pub.Payload = []byte(`{"registrationId":"a"}`)
	withBody := encode(pub)
	sub := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sub.MessageID, sub.Topics, sub.Qoss = 1, []string{dps.MQTTResponseFilter}, []byte{1}
	subBytes := encode(sub)
	tests := []struct {
		name    string
		in      []byte
		max     int
		wantErr error
		check   func(t *testing.T, p packets.ControlPacket)
	}{
		{"publish with an empty payload", empty, 1024, nil, func(t *testing.T, p packets.ControlPacket) {
			if pp := p.(*packets.PublishPacket); pp.MessageID != 9 || len(pp.Payload) != 0 || pp.TopicName != pub.TopicName {
				t.Fatalf("%+v", pp)
			}
		}},
		{"publish with a body", withBody, 1024, nil, func(t *testing.T, p packets.ControlPacket) {
			if pp := p.(*packets.PublishPacket); string(pp.Payload) != `{"registrationId":"a"}` {
				t.Fatalf("payload %q", pp.Payload)
			}
		}},
		{"subscribe", subBytes, 1024, nil, nil},
		{"above the limit", withBody, 10, ErrPacketTooLarge, nil},
		{"256 MB announced", []byte{0x30, 0xff, 0xff, 0xff, 0x7f}, 1 << 20, ErrPacketTooLarge, nil},
		{"five-byte length", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01}, 1 << 20, ErrMalformed, nil},
		{"type 0", []byte{0x00, 0x00}, 1024, ErrMalformed, nil},
		{"type 15", []byte{0xf0, 0x00}, 1024, ErrMalformed, nil},
		{"publish QoS 3", []byte{0x36, 0x04, 0x00, 0x01, 'a', 0x00}, 1024, ErrMalformed, nil},
		{"publish topic longer than the packet", []byte{0x30, 0x03, 0x00, 0x09, 'a'}, 1024, ErrMalformed, nil},
		{"subscribe with trailing bytes", append(append([]byte{0x82, byte(len(subBytes) - 2 + 1)}, subBytes[2:]...), 0), 1024, ErrMalformed, nil},
		{"cut short", withBody[:len(withBody)-3], 1024, io.ErrUnexpectedEOF, nil},
		{"nothing", nil, 1024, io.EOF, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ReadPacket(bufio.NewReader(bytes.NewReader(tc.in)), tc.max)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

// TestReadPacketAnnouncedLengthAllocatesNothing: a header announcing the
// largest length MQTT allows is refused before its body is allocated.
func TestReadPacketAnnouncedLengthAllocatesNothing(t *testing.T) {
	in := []byte{0x30, 0xff, 0xff, 0xff, 0x7f}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 100; i++ {
		if _, err := ReadPacket(bufio.NewReaderSize(bytes.NewReader(in), 16), DefaultMaxPacketBytes); !errors.Is(err, ErrPacketTooLarge) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Fatalf("100 refused 256 MB headers allocated %d bytes", got)
	}
}

func TestNewValidates(t *testing.T) {
	base := func() Config {
		return Config{Provisioner: nilProvisioner{}, IDScope: "0ne00000001", Logger: slog.New(slog.DiscardHandler)}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"packet limit below payload limit + room", func(c *Config) { c.MaxPayloadBytes = 200 << 10; c.MaxPacketBytes = 100 << 10 }, false},
		{"payload limit raises the default packet limit", func(c *Config) { c.MaxPayloadBytes = 200 << 10 }, true},
		{"retry-after not below the idle timeout", func(c *Config) { c.IdleTimeout = time.Second }, false},
		{"negative limit", func(c *Config) { c.MaxConnections = -1 }, false},
		{"no scope", func(c *Config) { c.IDScope = "" }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			if _, err := New(c); (err == nil) != tc.ok {
				t.Fatalf("New: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// nilProvisioner is never called: New only checks that one is set.
type nilProvisioner struct{ Provisioner }
