// Package apirequest reads what a service API request carries besides its
// route: JSON bodies (content type checked), the query body, the
// If-Match and If-None-Match conditions of writes, and tells a body the
// client broke off (a ConnectionFault, the client's fault) from a server
// fault. It exists apart from internal/api so that the handlers there
// read as translations, and every rule about request framing is in one
// place.
//
// Every error it returns for a malformed request wraps ErrBadRequest; a
// body over the router's limit stays the *http.MaxBytesError the caller
// maps to 413.
package apirequest
