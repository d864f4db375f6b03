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

// TestScripts runs the CLI scripts in testdata/script against a fake of the
// service API (package clienttest), one fresh fake per script. Each script
// starts in $WORK, where zdps-data/ holds the fake's connection string and
// CA bundle, as `zdps serve` would leave them; $CONNSTR and $CAFILE hold
// the same for the scripts that pass them explicitly.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			srv := clienttest.Start()
			env.Defer(srv.Close)
			env.Values["fake"] = srv
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
			env.Setenv("FAKEHOST", srv.HostName())
			// Under -race every process sleeps 1s at exit so that the
			// detector can report; a script runs dozens of them.
			env.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// fake-registration ID STATUS HUB: store a registration record,
			// as a device registering would.
			"fake-registration": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 3 {
					ts.Fatalf("usage: fake-registration ID STATUS HUB")
				}
				ts.Value("fake").(*clienttest.Server).AddRegistration(enrollment.RegistrationState{
					RegistrationID: args[0], Status: args[1], AssignedHub: args[2], DeviceID: args[0],
				})
			},
			// fake-count N: the fake holds exactly N individual enrollments.
			"fake-count": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: fake-count N")
				}
				got := strconv.Itoa(len(ts.Value("fake").(*clienttest.Server).EnrollmentIDs()))
				if (got != args[0]) != neg {
					ts.Fatalf("fake holds %s enrollments, want %s", got, args[0])
				}
			},
		},
	})
}
