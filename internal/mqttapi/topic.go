package mqttapi

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/zdps/zdps/pkg/dps"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Topics of the DPS device API over MQTT (docs/protocol.md#device-api-over-mqtt).
const (
	// ResponseFilter is the one filter a device may subscribe to.
	ResponseFilter = "$dps/registrations/res/#"
	registerPrefix = "$dps/registrations/PUT/iotdps-register/?"
	pollPrefix     = "$dps/registrations/GET/iotdps-get-operationstatus/?"
	responsePrefix = "$dps/registrations/res/"
	// maxRIDLen bounds the request ID the answer echoes: "1", an integer
	// or a UUID in the SDKs.
	maxRIDLen = 64
	// maxOperationIDLen bounds an operation ID before the store sees it.
	maxOperationIDLen = 128
)

// ErrTopic: a PUBLISH topic that is neither request topic, or one whose
// properties are wrong.
var ErrTopic = errors.New("mqttapi: not a DPS request topic")

// ErrUserName: a CONNECT user name that is not
// {idScope}/registrations/{registrationId}/api-version={v}[&...].
var ErrUserName = errors.New("mqttapi: bad user name")

// Request kinds of a PUBLISH topic.
const (
	kindRegister = "register"
	kindPoll     = "poll"
)

// RequestTopic is a parsed request topic.
type RequestTopic struct {
	// Kind is "register" or "poll".
	Kind string
	// RID is $rid, echoed in the answer's topic.
	RID string
	// OperationID is the poll's operationId.
	OperationID string
}

// ParseRequestTopic parses a PUBLISH topic of a device. $rid is required
// and limited to letters, digits, '-', '_' and '.' (it is echoed into the
// answer topic, which must not carry wildcards or separators); other
// properties are ignored, as Azure does.
func ParseRequestTopic(topic string) (RequestTopic, error) {
	var t RequestTopic
	var query string
	switch {
	case strings.HasPrefix(topic, registerPrefix):
		t.Kind, query = kindRegister, topic[len(registerPrefix):]
	case strings.HasPrefix(topic, pollPrefix):
		t.Kind, query = kindPoll, topic[len(pollPrefix):]
	default:
		return t, ErrTopic
	}
	v, err := url.ParseQuery(query)
	if err != nil {
		return t, fmt.Errorf("%w: properties are not a query string", ErrTopic)
	}
	rids := v["$rid"]
	if len(rids) != 1 || !validToken(rids[0], maxRIDLen) {
		return t, fmt.Errorf("%w: one $rid of letters, digits, '-', '_' or '.' (at most %d) is required", ErrTopic, maxRIDLen)
	}
	t.RID = rids[0]
	if t.Kind == kindPoll {
		ops := v["operationId"]
		if len(ops) != 1 || !validToken(ops[0], maxOperationIDLen) {
			return t, fmt.Errorf("%w: one operationId is required", ErrTopic)
		}
		t.OperationID = ops[0]
	}
	return t, nil
}

func validToken(s string, max int) bool {
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

// ResponseTopic is the topic of an answer: the status, $rid first and,
// when set, retry-after (whole seconds) last.
func ResponseTopic(status int, rid, retryAfter string) string {
	t := fmt.Sprintf("%s%d/?$rid=%s", responsePrefix, status, rid)
	if retryAfter != "" {
		t += "&retry-after=" + retryAfter
	}
	return t
}

// UserName is a parsed CONNECT user name.
type UserName struct {
	IDScope        string
	RegistrationID string
	APIVersion     string
}

// ParseUserName parses {idScope}/registrations/{registrationId}/api-version={v}[&ClientVersion=...]:
// the api-version must be one zdps supports; other properties (the SDKs'
// ClientVersion, a user agent) are ignored without decoding them.
func ParseUserName(s string) (UserName, error) {
	var u UserName
	parts := strings.SplitN(s, "/", 4)
	if len(parts) != 4 || parts[1] != "registrations" || parts[0] == "" {
		return u, fmt.Errorf("%w: want {idScope}/registrations/{registrationId}/api-version=V", ErrUserName)
	}
	u.IDScope = parts[0]
	if err := enrollment.ValidateRegistrationID(parts[2]); err != nil {
		return u, fmt.Errorf("%w: %w", ErrUserName, err)
	}
	u.RegistrationID = parts[2]
	for _, prop := range strings.Split(parts[3], "&") {
		if v, ok := strings.CutPrefix(prop, "api-version="); ok {
			if u.APIVersion != "" {
				return u, fmt.Errorf("%w: api-version given twice", ErrUserName)
			}
			u.APIVersion = v
		}
	}
	if !dps.SupportedAPIVersion(u.APIVersion) {
		return u, fmt.Errorf("%w: api-version must be one of %s", ErrUserName, strings.Join(dps.APIVersions, ", "))
	}
	return u, nil
}
