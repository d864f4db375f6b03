package mqttapi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

func FuzzParseRequestTopic(f *testing.F) {
	for _, s := range []string{
		"$dps/registrations/PUT/iotdps-register/?$rid=1",
		"$dps/registrations/PUT/iotdps-register/?$rid=2f8c6b4e-8f0a-4a57-9a8e-6f1e2d3c4b5a",
		"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=7&operationId=4.abc.def",
		"$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1&$rid=2&operationId=x",
		"$dps/registrations/PUT/iotdps-register/?$rid=%23",
		"$dps/registrations/res/200/?$rid=1", "#", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		rt, err := ParseRequestTopic(topic)
		if err != nil {
			if !errors.Is(err, ErrTopic) {
				t.Fatalf("error %v does not wrap ErrTopic", err)
			}
			return
		}
		if rt.Kind != kindRegister && rt.Kind != kindPoll {
			t.Fatalf("kind %q", rt.Kind)
		}
		// The answer topic echoes $rid: it must stay a plain topic.
		ans := ResponseTopic(200, rt.RID, "")
		if strings.ContainsAny(ans[len(responsePrefix):], "#+\x00") || strings.Count(ans, "/") != 4 {
			t.Fatalf("answer topic %q from %q", ans, topic)
		}
		if rt.Kind == kindPoll && rt.OperationID == "" {
			t.Fatal("poll without an operation ID")
		}
	})
}

func FuzzParseUserName(f *testing.F) {
	for _, s := range []string{
		"0ne00000001/registrations/dev-1/api-version=2019-03-31",
		"0ne00000001/registrations/dev-1/api-version=2021-06-01&ClientVersion=azure-iot-provisioning-devicesdk%2F1.0",
		"0ne00000001/registrations/dev-1/api-version=2019-03-31&ClientVersion=iothubclient/1.11 (native; Linux; x86_64)",
		"0ne00000001/registrations/dev-1/api-version=2019-03-31&api-version=2021-06-01",
		"0ne00000001/registrations//api-version=2019-03-31", "a/b/c/d", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUserName(s)
		if err != nil {
			if !errors.Is(err, ErrUserName) {
				t.Fatalf("error %v does not wrap ErrUserName", err)
			}
			return
		}
		if !dps.SupportedAPIVersion(u.APIVersion) || u.IDScope == "" || strings.Contains(u.IDScope, "/") {
			t.Fatalf("accepted %+v from %q", u, s)
		}
		if err := enrollment.ValidateRegistrationID(u.RegistrationID); err != nil {
			t.Fatalf("accepted registration ID %q: %v", u.RegistrationID, err)
		}
	})
}

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
