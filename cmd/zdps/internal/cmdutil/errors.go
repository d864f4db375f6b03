package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/pkg/client"
)

// userError is an error whose message is written for the user as is.
type userError struct {
	msg string
	err error
}

func (e *userError) Error() string { return e.msg }
func (e *userError) Unwrap() error { return e.err }

// Errorf is an error worded for the user, printed as is; err (may be nil)
// stays in the chain for errors.Is.
func Errorf(err error, format string, args ...any) error {
	return &userError{msg: fmt.Sprintf(format, args...), err: err}
}

// Execute runs root and turns its error into one line on stderr. It
// returns the process exit status.
func Execute(ctx context.Context, root *cobra.Command) int {
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	msg := err.Error()
	if _, ok := errors.AsType[*userError](err); !ok {
		// cobra's own errors (unknown command, bad flag) may carry
		// suggestions on further lines; the first line is the message.
		msg, _, _ = strings.Cut(msg, "\n")
		if strings.Contains(msg, "unknown command") || strings.Contains(msg, "flag") || strings.Contains(msg, "arg(s)") {
			msg += " (see --help)"
		}
	}
	fmt.Fprintln(root.ErrOrStderr(), "zdps: "+msg)
	return 1
}

// Fail translates a client error into one line: what was being done, to
// what, and why, with the sentinel cases phrased for people.
func Fail(err error, kind, id, action string) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*userError](err); ok {
		return err
	}
	var apiErr *client.APIError
	isAPI := errors.As(err, &apiErr)
	switch {
	case errors.Is(err, client.ErrNotFound) && isAPI && apiErr.ErrorCode == 404000:
		// zdps answers unknown routes with 404000: not a missing item.
		return Errorf(err, "%s %s %q: the service does not know this call (is this a zdps server?): %v", action, kind, id, err)
	case errors.Is(err, client.ErrNotFound):
		return Errorf(err, "%s %q not found", kind, id)
	case errors.Is(err, client.ErrConflict):
		return Errorf(err, "%s %q already exists", kind, id)
	case errors.Is(err, client.ErrPreconditionFailed):
		return Errorf(err, "%s %q was changed by someone else (etag mismatch); fetch it again and retry", kind, id)
	case errors.Is(err, client.ErrUnauthorized):
		return Errorf(err, "%s %s %q: not authorized: %v", action, kind, id, err)
	case isAPI:
		return Errorf(err, "%s %s %q: %v", action, kind, id, err)
	}
	return Errorf(err, "%s %s %q: %v", action, kind, id, UnwrapTransport(err))
}

// FailList is Fail for calls on a collection.
func FailList(err error, what string) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*userError](err); ok {
		return err
	}
	if errors.Is(err, client.ErrUnauthorized) {
		return Errorf(err, "list %s: not authorized: %v", what, err)
	}
	if _, ok := errors.AsType[*client.APIError](err); ok {
		return Errorf(err, "list %s: %v", what, err)
	}
	return Errorf(err, "list %s: %v", what, UnwrapTransport(err))
}

// UnwrapTransport words transport errors for the user: an untrusted
// server certificate gets the flag that fixes it.
func UnwrapTransport(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "tls: failed to verify certificate"); i >= 0 {
		return msg[i:] + " (pass the server's CA bundle with --ca-file)"
	}
	return msg
}
