package deviceapi

import (
	"github.com/zdps/zdps/internal/devicewire"
)

var (
	// errScopeNotFound: the path's ID scope is not this instance's.
	errScopeNotFound = devicewire.ErrScopeNotFound
	// errTooLarge: the body exceeds Config.MaxBodyBytes.
	errTooLarge = devicewire.ErrTooLarge
)

const (
	msgUnauthorized = devicewire.MsgUnauthorized
	msgInternal     = devicewire.MsgInternal
	msgUnavailable  = devicewire.MsgUnavailable
	msgThrottled    = devicewire.MsgThrottled
)

// classify is the transports' one mapping (devicewire.Classify).
func classify(err error) (status, code int, msg string) { return devicewire.Classify(err) }
