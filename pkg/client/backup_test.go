package client_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/zdps/zdps/pkg/client"
)

// The test server keeps its store in memory, which has no snapshot: the
// answer names pg_dump and matches ErrBackupUnsupported.
func TestBackupUnsupported(t *testing.T) {
	c, _ := newClient(t)
	_, err := c.Backup(t.Context())
	if !errors.Is(err, client.ErrBackupUnsupported) {
		t.Fatalf("Backup: %v, want ErrBackupUnsupported", err)
	}
	if !strings.Contains(err.Error(), "pg_dump") {
		t.Errorf("message does not name pg_dump: %v", err)
	}
}

func TestBackupStreamsAndDetectsTruncation(t *testing.T) {
	c, srv := newClient(t)
	for _, tc := range []struct {
		name    string
		body    string
		length  string
		wantErr error
	}{
		{"whole", "0123456789", "10", nil},
		{"cut short", "01234", "10", io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.Intercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
				if r.URL.Path != "/backup" {
					next.ServeHTTP(w, r)
					return
				}
				w.Header().Set("Content-Length", tc.length)
				_, _ = io.WriteString(w, tc.body)
			})
			b, err := c.Backup(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer b.Body.Close()
			if b.Size != 10 {
				t.Errorf("Size %d", b.Size)
			}
			got, err := io.ReadAll(b.Body)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("read: %v (got %q), want %v", err, got, tc.wantErr)
			}
		})
	}
}
