package api

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/pkg/dps"
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
	e := newEnv(t, func(c *testConfig) { c.Store = store.New(noSnapshot{c.Store.Backend}, c.Now) })
	resp, body := e.getBackup()
	r := reply{status: resp.StatusCode, header: resp.Header, body: body}
	if r.status != http.StatusBadRequest {
		t.Fatalf("status %d: %s", r.status, body)
	}
	eb := r.errBody(t)
	if eb.ErrorCode != dps.CodeBackupUnsupported || !strings.Contains(eb.Message, "pg_dump --schema=zdps") {
		t.Errorf("answer %+v", eb)
	}
	if strings.Contains(e.logs.String(), `"level":"ERROR"`) {
		t.Error("a refused backup logged an ERROR")
	}
}

// TestBackupOutlivesWriteTimeout: a server's WriteTimeout bounds a whole
// answer, far less than a large store takes to stream; each write of the
// backup pushes the deadline on, so the copy completes.
func TestBackupOutlivesWriteTimeout(t *testing.T) {
	e := newEnv(t)
	fillBackupStore(t, e, "a", 16)
	// The same API behind a server whose answers must be written within
	// 100 ms of the request; reading the 8 MB slowly takes seconds, more
	// than the connection's buffers hide.
	srv := httptest.NewUnstartedServer(e.api.Handler())
	srv.Config.WriteTimeout = 100 * time.Millisecond
	srv.StartTLS()
	defer srv.Close()
	hr, err := http.NewRequest(http.MethodGet, srv.URL+"/backup?api-version="+testVersion, nil)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Authorization", e.ownerTok)
	resp, err := srv.Client().Do(hr)
	if err != nil {
		t.Fatalf("%v\n%s", err, e.logs.String())
	}
	defer resp.Body.Close()
	start := time.Now()
	n, err := io.Copy(io.Discard, slowReader{resp.Body})
	if err != nil || n != resp.ContentLength || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, read %d of %d bytes in %s: %v", resp.StatusCode, n, resp.ContentLength, time.Since(start), err)
	}
}

// slowReader reads in small pieces with a pause, so that the server's
// writes block on a full connection.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return s.r.Read(p[:min(len(p), 32<<10)])
}

// TestBackupAbandoned: a client that hangs up in the middle of a backup is
// the client's business: a WARN line, no ERROR, and the store's read
// transaction is released (a write that grows the file goes through).
func TestBackupAbandoned(t *testing.T) {
	e := newEnv(t)
	fillBackupStore(t, e, "a", 8)
	hr, err := http.NewRequest(http.MethodGet, e.srv.URL+"/backup?api-version="+testVersion, nil)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Authorization", e.ownerTok)
	resp, err := e.srv.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // hang up with megabytes to go
	e.srv.CloseClientConnections()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(e.logs.String(), "backup abandoned by the client"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no WARN line for the abandoned backup:\n%s", e.logs.String())
		}
	}
	if strings.Contains(e.logs.String(), `"level":"ERROR"`) {
		t.Errorf("an abandoned backup logged an ERROR:\n%s", e.logs.String())
	}
	// Double the file: bbolt must remap, which waits for read
	// transactions; a leaked snapshot would hang here.
	done := make(chan struct{})
	go func() { defer close(done); fillBackupStore(t, e, "b", 16) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("writes that grow the file are stuck: the snapshot was not released")
	}
}

// fillBackupStore writes batches of 500 values of 1 KB into the store,
// under keys starting with prefix.
func fillBackupStore(t *testing.T, e *env, prefix string, batches int) {
	ctx := t.Context()
	filler := bytes.Repeat([]byte("z"), 1000)
	for batch := range batches {
		err := e.st.Backend.Update(ctx, func(tx store.Tx) error {
			for i := range 500 {
				if _, err := tx.Put(ctx, "filler", fmt.Sprintf("%s-%02d-%04d", prefix, batch, i), filler, store.Condition{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Error(err)
			return
		}
	}
}
