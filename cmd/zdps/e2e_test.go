package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
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

// TestImportSurvivesServerKill moved to test/robustness (kill_test.go,
// TestKillDuringImport), with the other kill -9 tests.
