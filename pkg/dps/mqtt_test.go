package dps

import (
	"errors"
	"strings"
	"testing"
)

func TestMQTTUserName(t *testing.T) {
	cases := []struct {
		u    MQTTUserName
		want string
	}{
		{MQTTUserName{IDScope: "0ne00000001", RegistrationID: "dev-1", APIVersion: "2019-03-31"}, "0ne00000001/registrations/dev-1/api-version=2019-03-31"},
		{MQTTUserName{IDScope: "0ne00000001", RegistrationID: "dev-1", APIVersion: "2025-07-01-preview", ClientVersion: "zdps-device-go/1 (linux)"}, "0ne00000001/registrations/dev-1/api-version=2025-07-01-preview&ClientVersion=zdps-device-go%2F1+%28linux%29"},
	}
	for _, tc := range cases {
		got := tc.u.String()
		if got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.u, got, tc.want)
		}
		back, err := ParseMQTTUserName(got)
		if want := (MQTTUserName{IDScope: tc.u.IDScope, RegistrationID: tc.u.RegistrationID, APIVersion: tc.u.APIVersion}); err != nil || back != want {
			t.Errorf("ParseMQTTUserName(%q) = %+v, %v; want %+v", got, back, err, want)
		}
	}
	for _, bad := range []string{
		"", "a/b/c/d", "0ne00000001/registrations//api-version=2019-03-31",
		"0ne00000001/devices/dev-1/api-version=2019-03-31",
		"0ne00000001/registrations/dev-1/api-version=2019-03-31&api-version=2021-06-01",
		"0ne00000001/registrations/dev-1/api-version=1999-01-01",
		"0ne00000001/registrations/dev-1/ClientVersion=x",
	} {
		if _, err := ParseMQTTUserName(bad); !errors.Is(err, ErrMQTTUserName) {
			t.Errorf("ParseMQTTUserName(%q): err %v, want ErrMQTTUserName", bad, err)
		}
	}
}

func TestMQTTRequestTopic(t *testing.T) {
	cases := []struct {
		r    MQTTRequest
		want string
	}{
		{MQTTRequest{Kind: MQTTRegister, RID: "1"}, "$dps/registrations/PUT/iotdps-register/?$rid=1"},
		{MQTTRequest{Kind: MQTTPoll, RID: "7", OperationID: "4.0123456789abcdef.0f1e2d3c"}, "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=7&operationId=4.0123456789abcdef.0f1e2d3c"},
	}
	for _, tc := range cases {
		got := tc.r.Topic()
		if got != tc.want {
			t.Errorf("%+v.Topic() = %q, want %q", tc.r, got, tc.want)
		}
		if back, err := ParseMQTTRequestTopic(got); err != nil || back != tc.r {
			t.Errorf("ParseMQTTRequestTopic(%q) = %+v, %v", got, back, err)
		}
	}
	// An operation ID the service never makes is escaped by the device
	// and refused by the service.
	poll := MQTTRequest{Kind: MQTTPoll, RID: "2", OperationID: "a&b=c"}
	if got, want := poll.Topic(), "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=a%26b%3Dc"; got != want {
		t.Errorf("Topic() = %q, want %q", got, want)
	}
	for _, bad := range []string{
		"$dps/registrations/PUT/iotdps-register/?", "$dps/registrations/PUT/iotdps-register/?$rid=%23",
		"$dps/registrations/PUT/iotdps-register/?$rid=1&$rid=2", "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1",
		poll.Topic(), "$dps/registrations/res/200/?$rid=1", "#", "",
	} {
		if _, err := ParseMQTTRequestTopic(bad); !errors.Is(err, ErrMQTTTopic) {
			t.Errorf("ParseMQTTRequestTopic(%q): err %v, want ErrMQTTTopic", bad, err)
		}
	}
}

func TestParseMQTTResponseTopic(t *testing.T) {
	cases := []struct {
		topic string
		want  MQTTResponse
		ok    bool
	}{
		{"$dps/registrations/res/200/?$rid=1", MQTTResponse{Status: 200, RID: "1"}, true},
		{"$dps/registrations/res/202/?$rid=17&retry-after=3", MQTTResponse{Status: 202, RID: "17", RetryAfter: "3"}, true},
		{"$dps/registrations/res/429/?$rid=0b3e0c8e-59a0-4d3a-9c1e-4f3c2a1b0d9e&retry-after=5", MQTTResponse{Status: 429, RID: "0b3e0c8e-59a0-4d3a-9c1e-4f3c2a1b0d9e", RetryAfter: "5"}, true},
		{"$dps/registrations/res/401/?$rid=a+b%zz", MQTTResponse{Status: 401, RID: "a+b%zz"}, true},
		{"$dps/registrations/res/200/?retry-after=3", MQTTResponse{}, false},
		{"$dps/registrations/res/20/?$rid=1", MQTTResponse{}, false},
		{"$dps/registrations/res/abc/?$rid=1", MQTTResponse{}, false},
		{"$dps/registrations/res/200?$rid=1", MQTTResponse{}, false},
		{"$dps/registrations/PUT/iotdps-register/?$rid=1", MQTTResponse{}, false},
		{"devices/dev-1/messages/devicebound/", MQTTResponse{}, false},
		{"", MQTTResponse{}, false},
	}
	for _, tc := range cases {
		got, ok := ParseMQTTResponseTopic(tc.topic)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseMQTTResponseTopic(%q) = %+v, %v; want %+v, %v", tc.topic, got, ok, tc.want, tc.ok)
		}
		if ok && got.Topic() != tc.topic {
			t.Errorf("%+v.Topic() = %q, want %q", got, got.Topic(), tc.topic)
		}
	}
}

func FuzzParseMQTTRequestTopic(f *testing.F) {
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
		r, err := ParseMQTTRequestTopic(topic)
		if err != nil {
			if !errors.Is(err, ErrMQTTTopic) {
				t.Fatalf("error %v does not wrap ErrMQTTTopic", err)
			}
			return
		}
		if r.Kind != MQTTRegister && r.Kind != MQTTPoll {
			t.Fatalf("kind %q", r.Kind)
		}
		// The answer topic echoes $rid: it must stay a plain topic.
		ans := MQTTResponse{Status: 200, RID: r.RID}.Topic()
		if strings.ContainsAny(ans[len(mqttResponsePrefix):], "#+\x00") || strings.Count(ans, "/") != 4 {
			t.Fatalf("answer topic %q from %q", ans, topic)
		}
		if back, ok := ParseMQTTResponseTopic(ans); !ok || back.RID != r.RID {
			t.Fatalf("answer topic %q does not read back $rid %q", ans, r.RID)
		}
		if r.Kind == MQTTPoll && r.OperationID == "" {
			t.Fatal("poll without an operation ID")
		}
	})
}

func FuzzParseMQTTUserName(f *testing.F) {
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
		u, err := ParseMQTTUserName(s)
		if err != nil {
			if !errors.Is(err, ErrMQTTUserName) {
				t.Fatalf("error %v does not wrap ErrMQTTUserName", err)
			}
			return
		}
		if !SupportedAPIVersion(u.APIVersion) || u.IDScope == "" || strings.Contains(u.IDScope, "/") ||
			u.RegistrationID == "" || strings.Contains(u.RegistrationID, "/") {
			t.Fatalf("accepted %+v from %q", u, s)
		}
	})
}

func FuzzParseMQTTResponseTopic(f *testing.F) {
	f.Add("$dps/registrations/res/202/?$rid=17&retry-after=3")
	f.Add("$dps/registrations/res/429/?$rid=&retry-after=")
	f.Fuzz(func(t *testing.T, topic string) {
		r, ok := ParseMQTTResponseTopic(topic)
		if !ok {
			return
		}
		if r.Status < 100 || r.Status > 999 || r.RID == "" || !strings.HasPrefix(topic, mqttResponsePrefix) {
			t.Fatalf("accepted %q as %+v", topic, r)
		}
	})
}
