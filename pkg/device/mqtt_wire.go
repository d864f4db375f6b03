package device

import (
	"net/url"
	"strconv"
	"strings"
)

// The DPS MQTT topics (docs/protocol.md#device-api-over-mqtt).
const (
	// mqttAnswerFilter is the one subscription a device makes.
	mqttAnswerFilter = "$dps/registrations/res/#"
	mqttAnswerPrefix = "$dps/registrations/res/"
	mqttRegisterPub  = "$dps/registrations/PUT/iotdps-register/?$rid="
	mqttPollPub      = "$dps/registrations/GET/iotdps-get-operationstatus/?$rid="
)

// mqttUserName is the CONNECT user name:
// {idScope}/registrations/{id}/api-version={v}&ClientVersion={ua}, as the
// Node and C SDKs send it (the ID scope and registration ID hold no '/',
// New checks both).
func mqttUserName(idScope, regID, apiVersion, userAgent string) string {
	u := idScope + "/registrations/" + regID + "/api-version=" + url.QueryEscape(apiVersion)
	if userAgent != "" {
		u += "&ClientVersion=" + url.QueryEscape(userAgent)
	}
	return u
}

// mqttRequestTopic is the topic of q with request ID rid.
func mqttRequestTopic(q request, rid string) string {
	if q.op == "" {
		return mqttRegisterPub + rid
	}
	return mqttPollPub + rid + "&operationId=" + url.QueryEscape(q.op)
}

// mqttAnswer is what an answer's topic says:
// $dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}].
type mqttAnswer struct {
	status     int
	rid        string
	retryAfter string
}

// parseMQTTAnswerTopic reads an answer topic; ok is false for any other
// topic, or a status that is not a 3-digit number.
func parseMQTTAnswerTopic(topic string) (mqttAnswer, bool) {
	rest, ok := strings.CutPrefix(topic, mqttAnswerPrefix)
	if !ok {
		return mqttAnswer{}, false
	}
	status, query, ok := strings.Cut(rest, "/?")
	if !ok || len(status) != 3 {
		return mqttAnswer{}, false
	}
	code, err := strconv.Atoi(status)
	if err != nil || code < 100 {
		return mqttAnswer{}, false
	}
	a := mqttAnswer{status: code}
	// Parsed by hand: url.ParseQuery would drop a pair with a bad escape
	// and turn '+' into a space, and $rid is opaque.
	for pair := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(pair, "=")
		switch k {
		case "$rid":
			a.rid = v
		case "retry-after":
			a.retryAfter = v
		}
	}
	if a.rid == "" {
		return mqttAnswer{}, false
	}
	return a, true
}
