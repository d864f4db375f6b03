package api

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/zdps/zdps/internal/api/apirequest"
)

// Connection faults (apirequest.ConnectionFault) are logged through
// ratelog: anyone can cause them.
const (
	faultLogLines    = 10
	faultLogInterval = time.Minute
)

// logConnectionFault closes the connection after the answer and logs the
// fault at INFO, rate-limited.
func (a *API) logConnectionFault(w http.ResponseWriter, r *http.Request, cf *apirequest.ConnectionFault) {
	w.Header().Set("Connection", "close")
	a.faultLog.Log(r.Context(), slog.LevelInfo, cf.Msg, "connection fault",
		"request_id", RequestID(r.Context()), "remote_addr", r.RemoteAddr, "reason", cf.Msg, "error", cf.Cause)
}
