package dps

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// The DPS device API over MQTT 3.1.1: its topics and the CONNECT user
// name, built by devices (pkg/device) and parsed by the service
// (internal/mqttapi), and the other way round for answers
// (docs/protocol.md#device-api-over-mqtt).
const (
	// MQTTResponseFilter is the one filter a device subscribes to.
	MQTTResponseFilter = "$dps/registrations/res/#"
	mqttRegisterPrefix = "$dps/registrations/PUT/iotdps-register/?"
	mqttPollPrefix     = "$dps/registrations/GET/iotdps-get-operationstatus/?"
	mqttResponsePrefix = "$dps/registrations/res/"
	// maxMQTTRIDLen bounds the request ID an answer echoes: "1", an
	// integer or a UUID in the SDKs.
	maxMQTTRIDLen = 64
	// maxMQTTOperationIDLen bounds a poll's operation ID before the store
	// sees it.
	maxMQTTOperationIDLen = 128
)

// Kinds of MQTT request.
const (
	MQTTRegister = "register"
	MQTTPoll     = "poll"
)

// ErrMQTTTopic: a PUBLISH topic that is neither request topic, or one
// whose properties are wrong.
var ErrMQTTTopic = errors.New("dps: not a DPS MQTT request topic")

// ErrMQTTUserName: a CONNECT user name that is not
// {idScope}/registrations/{registrationId}/api-version={v}[&...].
var ErrMQTTUserName = errors.New("dps: bad MQTT user name")

// MQTTRequest is what a request topic says.
type MQTTRequest struct {
	// Kind is MQTTRegister or MQTTPoll.
	Kind string
	// RID is $rid, echoed in the answer's topic.
	RID string
	// OperationID is the poll's operationId.
	OperationID string
}

// Topic is the request's PUBLISH topic.
func (r MQTTRequest) Topic() string {
	if r.Kind == MQTTPoll {
		return mqttPollPrefix + "$rid=" + r.RID + "&operationId=" + url.QueryEscape(r.OperationID)
	}
	return mqttRegisterPrefix + "$rid=" + r.RID
}

// ParseMQTTRequestTopic parses a device's PUBLISH topic. $rid is required
// and limited to letters, digits, '-', '_' and '.' (it is echoed into the
// answer topic, which must not carry wildcards or separators); other
// properties are ignored, as Azure does.
func ParseMQTTRequestTopic(topic string) (MQTTRequest, error) {
	var r MQTTRequest
	var query string
	switch {
	case strings.HasPrefix(topic, mqttRegisterPrefix):
		r.Kind, query = MQTTRegister, topic[len(mqttRegisterPrefix):]
	case strings.HasPrefix(topic, mqttPollPrefix):
		r.Kind, query = MQTTPoll, topic[len(mqttPollPrefix):]
	default:
		return r, ErrMQTTTopic
	}
	v, err := url.ParseQuery(query)
	if err != nil {
		return r, fmt.Errorf("%w: properties are not a query string", ErrMQTTTopic)
	}
	rids := v["$rid"]
	if len(rids) != 1 || !mqttToken(rids[0], maxMQTTRIDLen) {
		return r, fmt.Errorf("%w: one $rid of letters, digits, '-', '_' or '.' (at most %d) is required", ErrMQTTTopic, maxMQTTRIDLen)
	}
	r.RID = rids[0]
	if r.Kind == MQTTPoll {
		ops := v["operationId"]
		if len(ops) != 1 || !mqttToken(ops[0], maxMQTTOperationIDLen) {
			return r, fmt.Errorf("%w: one operationId is required", ErrMQTTTopic)
		}
		r.OperationID = ops[0]
	}
	return r, nil
}

func mqttToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// MQTTResponse is what an answer's topic says:
// $dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}].
type MQTTResponse struct {
	Status int
	RID    string
	// RetryAfter is whole seconds as sent, "" for none.
	RetryAfter string
}

// Topic is the answer's topic: the status, $rid first and, when set,
// retry-after last (the order the SDKs expect).
func (r MQTTResponse) Topic() string {
	t := mqttResponsePrefix + strconv.Itoa(r.Status) + "/?$rid=" + r.RID
	if r.RetryAfter != "" {
		t += "&retry-after=" + r.RetryAfter
	}
	return t
}

// ParseMQTTResponseTopic reads an answer topic; ok is false for any other
// topic, a status that is not a 3-digit number, or no $rid.
func ParseMQTTResponseTopic(topic string) (MQTTResponse, bool) {
	rest, ok := strings.CutPrefix(topic, mqttResponsePrefix)
	if !ok {
		return MQTTResponse{}, false
	}
	status, query, ok := strings.Cut(rest, "/?")
	if !ok || len(status) != 3 {
		return MQTTResponse{}, false
	}
	code, err := strconv.Atoi(status)
	if err != nil || code < 100 {
		return MQTTResponse{}, false
	}
	r := MQTTResponse{Status: code}
	// Parsed by hand: url.ParseQuery would drop a pair with a bad escape
	// and turn '+' into a space, and $rid is opaque.
	for pair := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(pair, "=")
		switch k {
		case "$rid":
			r.RID = v
		case "retry-after":
			r.RetryAfter = v
		}
	}
	if r.RID == "" {
		return MQTTResponse{}, false
	}
	return r, true
}

// MQTTUserName is the CONNECT user name:
// {idScope}/registrations/{registrationId}/api-version={v}[&ClientVersion={ua}].
type MQTTUserName struct {
	IDScope        string
	RegistrationID string
	APIVersion     string
	// ClientVersion is the device's user agent, "" for none; the service
	// ignores it.
	ClientVersion string
}

// String is the user name as the Node and C SDKs send it (the ID scope
// and registration ID hold no '/').
func (u MQTTUserName) String() string {
	s := u.IDScope + "/registrations/" + u.RegistrationID + "/api-version=" + url.QueryEscape(u.APIVersion)
	if u.ClientVersion != "" {
		s += "&ClientVersion=" + url.QueryEscape(u.ClientVersion)
	}
	return s
}

// ParseMQTTUserName parses a CONNECT user name: the api-version must be
// one zdps supports; other properties (the SDKs' ClientVersion, a user
// agent) are ignored without decoding them. The registration ID is only
// checked to be present: the service compares it with the client ID,
// which it validates.
func ParseMQTTUserName(s string) (MQTTUserName, error) {
	var u MQTTUserName
	parts := strings.SplitN(s, "/", 4)
	if len(parts) != 4 || parts[1] != "registrations" || parts[0] == "" || parts[2] == "" {
		return u, fmt.Errorf("%w: want {idScope}/registrations/{registrationId}/api-version=V", ErrMQTTUserName)
	}
	u.IDScope, u.RegistrationID = parts[0], parts[2]
	for prop := range strings.SplitSeq(parts[3], "&") {
		if v, ok := strings.CutPrefix(prop, "api-version="); ok {
			if u.APIVersion != "" {
				return u, fmt.Errorf("%w: api-version given twice", ErrMQTTUserName)
			}
			u.APIVersion = v
		}
	}
	if !SupportedAPIVersion(u.APIVersion) {
		return u, fmt.Errorf("%w: api-version must be one of %s", ErrMQTTUserName, strings.Join(APIVersions, ", "))
	}
	return u, nil
}
