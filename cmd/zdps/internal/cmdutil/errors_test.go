package cmdutil

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"syscall"
	"testing"

	"github.com/zdps/zdps/pkg/client"
)

func TestFailWording(t *testing.T) {
	refused := &url.Error{Op: "Get", URL: "https://h/x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "not found", err: &client.APIError{StatusCode: 404, ErrorCode: 404201}, want: `enrollment "dev-1" not found`},
		{name: "unknown route", err: &client.APIError{StatusCode: 404, ErrorCode: 404000, Message: "no route"},
			want: `get enrollment "dev-1": the service does not know this call (is this a zdps server?): service answered 404 (code 404000): no route`},
		{name: "conflict", err: &client.APIError{StatusCode: 409}, want: `enrollment "dev-1" already exists`},
		{name: "etag", err: &client.APIError{StatusCode: 412}, want: `enrollment "dev-1" was changed by someone else (etag mismatch); fetch it again and retry`},
		{name: "forbidden", err: &client.APIError{StatusCode: 403, ErrorCode: 403002, Message: "no right"},
			want: `get enrollment "dev-1": not authorized: service answered 403 (code 403002): no right`},
		{name: "bad request", err: &client.APIError{StatusCode: 400, ErrorCode: 400004, Message: "bad key", TrackingID: "t1"},
			want: `get enrollment "dev-1": service answered 400 (code 400004): bad key [tracking id t1]`},
		{name: "network", err: fmt.Errorf("wrapped: %w", refused), want: `get enrollment "dev-1": wrapped: Get "https://h/x": dial: connection refused`},
		{name: "already worded", err: Errorf(nil, "as is"), want: "as is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Fail(tt.err, "enrollment", "dev-1", "get")
			if got.Error() != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
			if !errors.Is(got, tt.err) && tt.name != "already worded" {
				t.Fatal("the client error is no longer in the chain")
			}
		})
	}
	if Fail(nil, "x", "y", "z") != nil {
		t.Fatal("Fail(nil) is not nil")
	}
}
