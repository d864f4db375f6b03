package dps

import "time"

// DPS error codes: six digits, the HTTP status and a detail. The ones
// Azure clients are known to look at are Azure's values
// (docs/protocol.md#error-format); the others are zdps's, in the same
// scheme.
const (
	CodeBadArgument = 400004 // a request that is wrong in shape or content
	// CodeAllocationFailed ends a registration whose allocation failed
	// (Azure answers it when a custom allocation fails; zdps for every
	// allocation failure): an operation's errorCode.
	CodeAllocationFailed = 400209
	// CodeBackupUnsupported answers GET /backup on a store that is not one
	// bbolt file (PostgreSQL has pg_dump); pkg/client matches it.
	CodeBackupUnsupported = 400901
	CodeUnauthorized      = 401002
	CodeForbidden         = 403002
	// CodeFirmwarePolicy ends a registration that the enrollment's DICE
	// firmware policy refused (zdps's: Azure has no firmware policy). The
	// answer is status failed, not 401: the device did prove its identity
	// and, as for a disabled enrollment, is told what refused it.
	CodeFirmwarePolicy   = 403010
	CodeRouteNotFound    = 404000
	CodeNotFound         = 404201
	CodeMethodNotAllowed = 405000
	// CodeAssignmentTimedOut ends an operation that did not complete
	// before its deadline; the device registers again.
	CodeAssignmentTimedOut = 408001
	CodeConflict           = 409201
	CodePreconditionFailed = 412002
	CodeTooLarge           = 413004
	CodeThrottled          = 429001
	CodeInternal           = 500000
	CodeUnavailable        = 503000
)

// ErrorBody is the DPS error format every refusal is answered in, on
// every transport: errorCode, trackingId (the server log's key for it),
// message, info and timestampUtc.
type ErrorBody struct {
	ErrorCode    int            `json:"errorCode"`
	TrackingID   string         `json:"trackingId"`
	Message      string         `json:"message"`
	Info         map[string]any `json:"info"`
	TimestampUTC string         `json:"timestampUtc"`
}

// NewErrorBody is the ErrorBody of a refusal answered at now: info empty
// (an object, never null) and the timestamp in UTC.
func NewErrorBody(code int, trackingID, msg string, now time.Time) ErrorBody {
	return ErrorBody{
		ErrorCode:    code,
		TrackingID:   trackingID,
		Message:      msg,
		Info:         map[string]any{},
		TimestampUTC: now.UTC().Format(time.RFC3339Nano),
	}
}
