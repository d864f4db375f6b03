package client

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidConnectionString is wrapped by every ParseConnectionString error.
var ErrInvalidConnectionString = errors.New("invalid connection string")

// ConnectionString is an Azure-format service connection string:
// HostName=host[:port];SharedAccessKeyName=policy;SharedAccessKey=base64key.
type ConnectionString struct {
	HostName            string
	SharedAccessKeyName string
	// SharedAccessKey is the base64 key exactly as written.
	SharedAccessKey string
}

// ParseConnectionString parses s. Keys are matched case-insensitively, as
// the Azure SDKs do; values keep their case. The key must be valid base64,
// because a typo there would otherwise only show up as 401 on every call.
func ParseConnectionString(s string) (ConnectionString, error) {
	var cs ConnectionString
	s = strings.TrimSpace(s)
	if s == "" {
		return cs, fmt.Errorf("%w: empty", ErrInvalidConnectionString)
	}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue // a trailing ";" is common in copied strings
		}
		// Split at the first "=" only: base64 keys end in "=" padding.
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return ConnectionString{}, fmt.Errorf("%w: %q is not key=value", ErrInvalidConnectionString, part)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if seen[k] {
			return ConnectionString{}, fmt.Errorf("%w: %s given twice", ErrInvalidConnectionString, k)
		}
		seen[k] = true
		switch k {
		case "hostname":
			cs.HostName = v
		case "sharedaccesskeyname":
			cs.SharedAccessKeyName = v
		case "sharedaccesskey":
			cs.SharedAccessKey = v
		default:
			// Azure strings may carry other keys (e.g. DeviceId for device
			// strings); refusing them points at a wrong kind of string.
			return ConnectionString{}, fmt.Errorf("%w: unknown key %q (want HostName, SharedAccessKeyName, SharedAccessKey)", ErrInvalidConnectionString, k)
		}
	}
	switch {
	case cs.HostName == "":
		return ConnectionString{}, fmt.Errorf("%w: HostName missing", ErrInvalidConnectionString)
	case strings.ContainsAny(cs.HostName, "/?#@ "):
		return ConnectionString{}, fmt.Errorf("%w: HostName %q must be host or host:port, without scheme or path", ErrInvalidConnectionString, cs.HostName)
	case cs.SharedAccessKeyName == "":
		return ConnectionString{}, fmt.Errorf("%w: SharedAccessKeyName missing", ErrInvalidConnectionString)
	case cs.SharedAccessKey == "":
		return ConnectionString{}, fmt.Errorf("%w: SharedAccessKey missing", ErrInvalidConnectionString)
	}
	if _, err := cs.Key(); err != nil {
		return ConnectionString{}, err
	}
	return cs, nil
}

// Key returns the decoded SharedAccessKey.
func (cs ConnectionString) Key() ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(cs.SharedAccessKey)
	if err != nil || len(k) == 0 {
		// The key itself is never quoted in the error: it is a secret.
		return nil, fmt.Errorf("%w: SharedAccessKey is not valid base64", ErrInvalidConnectionString)
	}
	return k, nil
}

// String formats the connection string in the Azure form.
func (cs ConnectionString) String() string {
	return "HostName=" + cs.HostName + ";SharedAccessKeyName=" + cs.SharedAccessKeyName + ";SharedAccessKey=" + cs.SharedAccessKey
}
