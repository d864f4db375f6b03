package main

import (
	"context"
	"crypto/x509"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/zdps/zdps/pkg/client"
)

// The tests in this file run the real `zdps serve` as a child process (the
// test binary, registered as "zdps" by TestMain) and drive it with the CLI.

// freePort asks the kernel for a free port. Another process may take it
// before the server binds it; the server then fails to start and the test
// says so.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// serverClient waits until the server of dataDir answers through its own
// connection string and CA bundle, and returns a client for it.
func serverClient(ctx context.Context, dataDir string) (*client.Client, error) {
	var last error
	for ctx.Err() == nil {
		c, err := dataDirClient(dataDir)
		if err == nil {
			if _, err = c.GetSettings(ctx); err == nil {
				return c, nil
			}
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("server of %s not ready: %w", dataDir, last)
}

func dataDirClient(dataDir string) (*client.Client, error) {
	cs, err := os.ReadFile(filepath.Join(dataDir, "service-connection-string"))
	if err != nil {
		return nil, err
	}
	bundle, err := os.ReadFile(filepath.Join(dataDir, "ca-bundle.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return nil, errors.New("empty CA bundle")
	}
	return client.New(client.Config{ConnectionString: strings.TrimSpace(string(cs)), RootCAs: pool})
}

// TestWalkthrough runs the README walk-through (testdata/e2e) against a
// real server: hub, symmetric-key group, enrollment, list, keys, delete.
func TestWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server")
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/e2e",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("PORT", freePort(env.T().(testing.TB)))
			env.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// wait-ready DATA_DIR: wait until the server answers.
			"wait-ready": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: wait-ready DATA_DIR")
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				_, err := serverClient(ctx, ts.MkAbs(args[0]))
				ts.Check(err)
			},
			// setenv-json VAR FILE FIELD: set VAR to a string field of the
			// JSON object in FILE.
			"setenv-json": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 3 {
					ts.Fatalf("usage: setenv-json VAR FILE FIELD")
				}
				var m map[string]any
				ts.Check(json.Unmarshal([]byte(ts.ReadFile(args[1])), &m))
				v, ok := m[args[2]].(string)
				if !ok {
					ts.Fatalf("%s has no string field %q", args[1], args[2])
				}
				ts.Setenv(args[0], v)
			},
			// wait-socket PATH: wait until a Unix socket accepts connections.
			"wait-socket": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: wait-socket PATH")
				}
				for i := 0; ; i++ {
					c, err := net.Dial("unix", ts.MkAbs(args[0]))
					if err == nil {
						c.Close()
						return
					}
					if i == 200 {
						ts.Fatalf("%s does not accept connections: %v", args[0], err)
					}
					time.Sleep(50 * time.Millisecond)
				}
			},
			// setenv-file VAR FILE: set VAR to the content of FILE (trimmed).
			"setenv-file": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 2 {
					ts.Fatalf("usage: setenv-file VAR FILE")
				}
				ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
			},
		},
	})
}

// startServer starts `zdps serve` and waits until it answers.
func startServer(t *testing.T, dataDir, port string) (*exec.Cmd, *client.Client) {
	t.Helper()
	cmd := exec.Command("zdps", "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:"+port, "--log-level", "warn")
	log, err := os.OpenFile(filepath.Join(filepath.Dir(dataDir), "serve.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	c, err := serverClient(ctx, dataDir)
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(filepath.Dir(dataDir), "serve.log"))
		t.Fatalf("%v; server log:\n%s", err, b)
	}
	return cmd, c
}

// atLeast reports whether the server holds at least n enrollments.
func atLeast(ctx context.Context, c *client.Client, n int) bool {
	seen, cont := 0, ""
	for {
		page, next, err := c.QueryEnrollments(ctx, 1000, cont)
		if err != nil {
			return false
		}
		seen += len(page)
		if seen >= n {
			return true
		}
		if next == "" {
			return false
		}
		cont = next
	}
}

// countEnrollments pages through every enrollment, checking that none is
// listed twice and that each is whole.
func countEnrollments(t *testing.T, c *client.Client) int {
	t.Helper()
	seen := map[string]bool{}
	for e, err := range c.Enrollments(t.Context(), 1000) {
		if err != nil {
			t.Fatal(err)
		}
		if seen[e.RegistrationID] {
			t.Fatalf("enrollment %s listed twice", e.RegistrationID)
		}
		if e.Attestation == nil || e.Attestation.Type != "symmetricKey" || e.ETag == "" {
			t.Fatalf("enrollment %s is not whole: %+v", e.RegistrationID, e)
		}
		seen[e.RegistrationID] = true
	}
	return len(seen)
}

// TestImportSurvivesServerKill is the resumability contract with a real
// process and a real kill: the server is SIGKILLed in the middle of a
// large import; the import stops with a non-zero status; after a restart,
// the same command completes it, creating exactly what was missing.
//
// ZDPS_E2E_IMPORT_ROWS overrides the size (default 100,000).
func TestImportSurvivesServerKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server and imports 100,000 rows")
	}
	rows := 100_000
	if v := os.Getenv("ZDPS_E2E_IMPORT_ROWS"); v != "" {
		var err error
		if rows, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	dataDir, port := filepath.Join(dir, "data"), freePort(t)
	input := filepath.Join(dir, "devices.csv")
	f, err := os.Create(input)
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"registrationId", "attestation"})
	for i := range rows {
		_ = w.Write([]string{fmt.Sprintf("device-%07d", i), "symmetricKey"})
	}
	w.Flush()
	if err := errors.Join(w.Error(), f.Close()); err != nil {
		t.Fatal(err)
	}

	server, c := startServer(t, dataDir, port)
	imp := func() (string, error) {
		cmd := exec.Command("zdps", "--data-dir", dataDir, "enrollment", "import", input, "--retries", "2", "-o", "json")
		cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// Kill the server once a tenth of the rows are in.
	killed := make(chan error, 1)
	go func() {
		for !atLeast(t.Context(), c, rows/10) {
			time.Sleep(10 * time.Millisecond)
		}
		killed <- server.Process.Kill()
		_ = server.Wait()
	}()
	out, err := imp()
	if kerr := <-killed; kerr != nil {
		t.Fatal(kerr)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("first import: err = %v, want exit status 1 (server killed mid-import); output:\n%s", err, out)
	}
	if !strings.Contains(out, "import stopped early") || !strings.Contains(out, "run the same command again to resume") {
		t.Fatalf("first import does not say it stopped early:\n%s", out)
	}
	t.Logf("first import, server killed:\n%s", out)

	// Restart on the same data directory: what was committed is there.
	_, c = startServer(t, dataDir, port)
	before := countEnrollments(t, c)
	if before == 0 || before >= rows {
		t.Fatalf("%d enrollments after the kill: the kill did not land mid-import", before)
	}

	out, err = imp()
	if err != nil {
		t.Fatalf("re-run: %v\n%s", err, out)
	}
	want := fmt.Sprintf(`"read": %d`, rows)
	for _, w := range []string{want, fmt.Sprintf(`"created": %d`, rows-before), fmt.Sprintf(`"alreadyPresent": %d`, before), `"failed": 0`} {
		if !strings.Contains(out, w) {
			t.Fatalf("re-run summary lacks %s:\n%s", w, out)
		}
	}
	if got := countEnrollments(t, c); got != rows {
		t.Fatalf("%d enrollments after the re-run, want %d", got, rows)
	}
	// Every enrollment was stored whole, keys included.
	for i := 0; i < rows; i += rows / 50 {
		id := fmt.Sprintf("device-%07d", i)
		m, err := c.EnrollmentKeys(t.Context(), id)
		if err != nil || m.SymmetricKey == nil || m.SymmetricKey.PrimaryKey == "" || m.SymmetricKey.SecondaryKey == "" {
			t.Fatalf("keys of %s: %+v, %v", id, m, err)
		}
	}
}
