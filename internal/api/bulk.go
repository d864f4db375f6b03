package api

import (
	"fmt"
	"net/http"

	"github.com/zdps/zdps/internal/api/apirequest"
	"github.com/zdps/zdps/internal/manage"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/pkg/enrollment"
)

// bulkFailure is one failed item of a bulk call, as DPS reports it.
type bulkFailure struct {
	id      string
	code    int
	message string
}

// bulkDocs runs a bulk call (manage.Bulk): a bad item is reported in
// the answer and does not stop the others (DPS semantics). The call itself
// fails only when its body is not a bulk request at all or has too many
// items; then nothing is written.
func bulkDocs[T store.Document](a *API, k *enrollmentKind[T]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := apirequest.RequireBody(r)
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		mode, vs, err := k.decodeBulk(b)
		if err != nil {
			a.writeError(w, r, badRequest(err))
			return
		}
		if len(vs) > a.cfg.MaxBulkItems {
			a.writeError(w, r, fmt.Errorf("%w: %d items in one bulk call; this server accepts at most %d (split the request)", errBadRequest, len(vs), a.cfg.MaxBulkItems))
			return
		}
		var failures []bulkFailure
		for _, res := range k.docs(a.uc).Bulk(r.Context(), mode, vs) {
			if res.Err == nil {
				a.audit(r, bulkAction(mode), k.resource, res.ID)
				continue
			}
			err := res.Err
			if manage.IsItemError(err) {
				err = about(k.resource, res.ID, err)
			}
			_, code, msg := classify(err)
			failures = append(failures, bulkFailure{id: res.ID, code: code, message: msg})
		}
		a.writeJSON(w, http.StatusOK, k.bulkResult(failures))
	}
}

func bulkAction(mode string) string {
	switch mode {
	case enrollment.BulkCreate:
		return "create"
	case enrollment.BulkDelete:
		return "delete"
	}
	return "update"
}
