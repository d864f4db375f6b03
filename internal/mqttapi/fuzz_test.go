package mqttapi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func FuzzReadPacket(f *testing.F) {
	for _, b := range [][]byte{
		{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0xc2, 0x00, 0x3c, 0x00, 0x00},
		{0x30, 0x04, 0x00, 0x01, 'a', 'b'},
		{0x32, 0x05, 0x00, 0x01, 'a', 0x00, 0x01},
		{0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', '/', '#', 0x01},
		{0xc0, 0x00}, {0xe0, 0x00}, {0x30, 0xff, 0xff, 0xff, 0x7f}, {},
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		for i := 0; i < 8; i++ { // a few packets in a row, as on a connection
			p, err := ReadPacket(r, 4096)
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrPacketTooLarge) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if p == nil {
				t.Fatal("no packet and no error")
			}
			if p.Details().Qos > 2 {
				t.Fatalf("QoS %d accepted", p.Details().Qos)
			}
		}
	})
}
