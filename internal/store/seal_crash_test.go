package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/zdps/zdps/internal/sealed"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
)

// sealCrashEnv names the bbolt file the child process migrates, then kills
// itself on.
const sealCrashEnv = "ZDPS_SEAL_CRASH_DB"

// sealCrashAfter is how many committed batches the child sees before it
// sends itself SIGKILL.
const sealCrashAfter = 3

// A kill -9 in the middle of the startup migration loses nothing: the
// batches committed before it are sealed, the rest still plaintext and
// readable, no completion mark is written, and the next run finishes.
func TestSealSecretsResumesAfterKill(t *testing.T) {
	if path := os.Getenv(sealCrashEnv); path != "" {
		sealCrashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "zdps.db")
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	legacy := store.New(b, nil)
	var secrets []string
	const n = 30
	for i := range n {
		secrets = append(secrets, sealTestDocs(t, legacy, fmt.Sprintf("c%02d-", i))...)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestSealSecretsResumesAfterKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), sealCrashEnv+"="+path)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed: %v\n%s", err, out)
	}

	b, err = bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Check(); err != nil {
		t.Fatalf("bolt check after kill: %v", err)
	}
	raw := sealTestRaw(t, b)
	sealedDocs, plainDocs := 0, 0
	for _, v := range raw {
		if bytes.Contains(v, []byte(sealed.Prefix)) {
			sealedDocs++
		} else {
			plainDocs++
		}
	}
	// Batches of 4 enrollments: the kill came after 3 of them.
	if sealedDocs != 4*sealCrashAfter || plainDocs != 3*n-sealedDocs {
		t.Fatalf("after the kill: %d documents sealed, %d plaintext; want %d sealed", sealedDocs, plainDocs, 4*sealCrashAfter)
	}
	s := store.New(b, nil, store.WithSealer(sealTestBox(t)))
	for i := range n {
		sealTestCheckReads(t, s, fmt.Sprintf("c%02d-", i)) // both halves read
	}
	var logs bytes.Buffer
	if err := s.SealSecrets(t.Context(), sealTestLogger(&logs), 4); err != nil {
		t.Fatal(err)
	}
	if leaks := sealTestLeaks(sealTestRaw(t, b), secrets); len(leaks) > 0 {
		t.Fatalf("plaintext left after the resumed migration:\n%s", strings.Join(leaks, "\n"))
	}
	if !strings.Contains(logs.String(), fmt.Sprintf(`"bucket":"enrollments","scanned":%d,"sealed":%d`, n, n-4*sealCrashAfter)) {
		t.Fatalf("resumed run did not seal only what was left:\n%s", logs.String())
	}
	for i := range n {
		sealTestCheckReads(t, s, fmt.Sprintf("c%02d-", i))
	}
}

func sealCrashChild(path string) {
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	box, _ := sealed.New(sealTestKEK)
	s := store.New(b, nil, store.WithSealer(box))
	err = s.SealSecrets(context.Background(), slog.New(&sealCrashHandler{}), 4)
	fmt.Fprintln(os.Stderr, "migration finished without being killed:", err)
	os.Exit(3)
}

// sealCrashHandler kills the process when the migration reports its
// sealCrashAfter-th committed batch.
type sealCrashHandler struct{ batches int }

func (h *sealCrashHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *sealCrashHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "sealing secrets at rest" {
		if h.batches++; h.batches == sealCrashAfter {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	return nil
}
func (h *sealCrashHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *sealCrashHandler) WithGroup(string) slog.Handler      { return h }
