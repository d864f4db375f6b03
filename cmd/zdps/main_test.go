package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/zdps/zdps/pkg/client/clienttest"
	"github.com/zdps/zdps/pkg/enrollment"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"zdps": func() { os.Exit(zdpsMain()) },
	})
}

// TestScripts runs the CLI scripts in testdata/script against the real
// service API on an in-memory store (package clienttest), a fresh one per
// script. Each script starts in $WORK, where zdps-data/ holds the service's
// connection string and CA bundle, as `zdps serve` would leave them;
// $CONNSTR and $CAFILE hold the same for the scripts that pass them
// explicitly.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			srv := clienttest.Start()
			env.Defer(srv.Close)
			env.Values["api"] = srv
			data := filepath.Join(env.WorkDir, "zdps-data")
			if err := os.MkdirAll(data, 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(data, "service-connection-string"), []byte(srv.ConnectionString()+"\n"), 0o600); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(data, "ca-bundle.pem"), srv.CAPEM(), 0o600); err != nil {
				return err
			}
			env.Setenv("CONNSTR", srv.ConnectionString())
			env.Setenv("CAFILE", filepath.Join(data, "ca-bundle.pem"))
			env.Setenv("APIHOST", srv.HostName())
			// Under -race every process sleeps 1s at exit so that the
			// detector can report; a script runs dozens of them.
			env.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// registration-record ID STATUS HUB [GROUP]: store a registration
			// record, as a device registering would.
			"registration-record": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 3 || len(args) > 4 {
					ts.Fatalf("usage: registration-record ID STATUS HUB [GROUP]")
				}
				r := enrollment.Registration{RegistrationID: args[0], Status: args[1], AssignedHub: args[2], DeviceID: args[0]}
				if len(args) == 4 {
					r.EnrollmentGroupID = args[3]
				}
				ts.Value("api").(*clienttest.Server).AddRegistration(r)
			},
			// enrollment-count N: the service holds exactly N individual enrollments.
			"enrollment-count": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: enrollment-count N")
				}
				got := strconv.Itoa(len(ts.Value("api").(*clienttest.Server).EnrollmentIDs()))
				if (got != args[0]) != neg {
					ts.Fatalf("the service holds %s enrollments, want %s", got, args[0])
				}
			},
		},
	})
}
