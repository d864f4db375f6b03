package api

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/store"
	"github.com/zdps/zdps/pkg/store/bolt"
)

// getBackup calls GET /backup with the owner token and returns the answer
// with its body read.
func (e *env) getBackup() (*http.Response, []byte) {
	e.t.Helper()
	hr, err := http.NewRequest(http.MethodGet, e.srv.URL+"/backup?api-version="+testVersion, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	hr.Header.Set("Authorization", e.ownerTok)
	resp, err := e.srv.Client().Do(hr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, body
}

func TestBackup(t *testing.T) {
	e := newEnv(t)
	e.must(req{method: http.MethodPut, path: "/enrollments/dev-1", body: symEnrollment("dev-1")}, http.StatusOK)
	resp, body := e.getBackup()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != BackupContentType {
		t.Errorf("Content-Type %q", ct)
	}
	if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
		t.Errorf("Content-Length %q for %d bytes", cl, len(body))
	}
	path := filepath.Join(t.TempDir(), "backup.db")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := bolt.Inspect(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if info.Keys[store.BucketEnrollments] != 1 || info.Keys[store.BucketPolicies] != 2 {
		t.Errorf("backup holds %v", info.Keys)
	}
	if !strings.Contains(e.logs.String(), `"action":"backup"`) {
		t.Error("no audit line for the backup")
	}
}

// noSnapshot hides the bolt backend's Snapshot, as PostgreSQL's would be
// missing.
type noSnapshot struct{ store.Backend }

func TestBackupUnsupported(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Store = store.New(noSnapshot{c.Store.Backend}, c.Now) })
	resp, body := e.getBackup()
	r := reply{status: resp.StatusCode, header: resp.Header, body: body}
	if r.status != http.StatusBadRequest {
		t.Fatalf("status %d: %s", r.status, body)
	}
	eb := r.errBody(t)
	if eb.ErrorCode != codeBackupUnsupported || !strings.Contains(eb.Message, "pg_dump --schema=zdps") {
		t.Errorf("answer %+v", eb)
	}
	if strings.Contains(e.logs.String(), `"level":"ERROR"`) {
		t.Error("a refused backup logged an ERROR")
	}
}
