package api

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/zdps/zdps/internal/store"
)

// backupWriteWindow is how long one write of a backup may take. The
// server's WriteTimeout bounds a whole answer, far too short for a large
// store over a slow link; each write that makes progress extends the
// deadline instead, so a stalled client still lets go of the snapshot.
const backupWriteWindow = 60 * time.Second

// BackupContentType is the media type of GET /backup's answer: a bbolt
// file image.
const BackupContentType = "application/vnd.zdps.bbolt"

// getBackup streams a consistent image of the store (one read transaction
// of the bbolt file) without buffering it: the size is known before the
// first byte, so the answer has a Content-Length and the client can check
// it got everything. A failure after the first byte can only cut the
// connection, which the client sees as a short body.
func (a *API) getBackup(w http.ResponseWriter, r *http.Request) {
	s, ok := store.Unwrap(a.store.Backend).(store.Snapshotter)
	if !ok {
		a.writeError(w, r, errBackupUnsupported)
		return
	}
	snap, err := s.Snapshot(r.Context())
	if err != nil {
		a.writeError(w, r, fmt.Errorf("backup: %w", err))
		return
	}
	defer snap.Close()
	// Audited before the copy: the image holds every key the store does.
	a.audit(r, "backup", "store", "")
	h := w.Header()
	h.Set("Content-Type", BackupContentType)
	h.Set("Content-Length", strconv.FormatInt(snap.Size(), 10))
	h.Set("Content-Disposition", `attachment; filename="zdps.db"`)
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	start := a.now()
	dw := &deadlineWriter{w: w, rc: http.NewResponseController(w)}
	n, err := snap.WriteTo(dw)
	if err != nil {
		if dw.err != nil || r.Context().Err() != nil {
			// The client went away or stopped reading; nothing is wrong
			// with the server.
			a.log.WarnContext(r.Context(), "backup abandoned by the client", "request_id", RequestID(r.Context()), "bytes", n, "size", snap.Size(), "error", err)
		} else {
			a.log.ErrorContext(r.Context(), "backup failed", "request_id", RequestID(r.Context()), "bytes", n, "size", snap.Size(), "error", err)
		}
		panic(http.ErrAbortHandler) // cut the connection: the body is short
	}
	a.log.InfoContext(r.Context(), "backup written", "request_id", RequestID(r.Context()), "bytes", n, "duration", a.now().Sub(start))
}

// deadlineWriter pushes the connection's write deadline forward before
// every write, and keeps the error of a write that failed: the client's
// side, unlike a failure to read the store.
type deadlineWriter struct {
	w   io.Writer
	rc  *http.ResponseController
	err error
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	// ErrNotSupported (a writer without deadlines, as in tests) leaves the
	// server's own timeout in charge.
	_ = d.rc.SetWriteDeadline(time.Now().Add(backupWriteWindow))
	n, err := d.w.Write(p)
	if err != nil {
		d.err = err
	}
	return n, err
}
