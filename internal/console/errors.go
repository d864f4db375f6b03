package console

import (
	"errors"
	"net/http"

	"github.com/zdps/zdps/internal/detect"
	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// userError is the message of an error the operator can fix (invalid
// input, a refused write check), as the API answers it 400.
func userError(err error) (string, bool) {
	if errors.Is(err, enrollment.ErrInvalid) || errors.Is(err, manage.ErrBadRequest) {
		return err.Error(), true
	}
	return "", false
}

// notFoundOr answers 404 with msg when err is a missing document, and a
// store fault otherwise.
func (c *Console) notFoundOr(w http.ResponseWriter, r *http.Request, err error, msg string) {
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, detect.ErrNotFound), errors.Is(err, enrollment.ErrInvalid):
		c.fail(w, r, http.StatusNotFound, msg)
	default:
		c.storeFault(w, r, err)
	}
}

// listFault answers a failed read of a list page: a page link (a
// continuation token) no longer valid is the operator's 400, anything
// else a store fault.
func (c *Console) listFault(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrInvalidContinuation) {
		c.fail(w, r, http.StatusBadRequest, "That page link is not valid any more; start from the first page.")
		return
	}
	c.storeFault(w, r, err)
}

// storeFault answers a failure that is not the operator's: busy store
// 503, anything else 500, logged; the page says nothing of the cause.
func (c *Console) storeFault(w http.ResponseWriter, r *http.Request, err error) {
	if msg, ok := userError(err); ok {
		c.fail(w, r, http.StatusBadRequest, msg)
		return
	}
	if errors.Is(err, store.ErrBusy) || errors.Is(err, store.ErrClosed) {
		c.fail(w, r, http.StatusServiceUnavailable, "The store is busy; try again in a moment.")
		return
	}
	c.log.ErrorContext(r.Context(), "console: server fault", "error", err)
	c.fail(w, r, http.StatusInternalServerError, "Something went wrong on the server; the log has the details.")
}
