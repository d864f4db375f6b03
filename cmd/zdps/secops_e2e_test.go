package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"go.etcd.io/bbolt"

	"github.com/zdps/zdps/pkg/client"
)

// TestSecops runs the security operations scripts (testdata/secops)
// against a real `zdps serve`: the audit trail of management changes and
// registrations, its verification before and after an edit of the bbolt
// file, the posture report, and a brute-force alert and its
// acknowledgement.
func TestSecops(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server")
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/secops",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("PORT", freePort(env.T().(testing.TB)))
			env.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"wait-ready": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: wait-ready DATA_DIR")
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				_, err := serverClient(ctx, ts.MkAbs(args[0]))
				ts.Check(err)
			},
			"setenv-json": setenvJSON,
			"setenv-file": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 2 {
					ts.Fatalf("usage: setenv-file VAR FILE")
				}
				ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
			},
			"wait-audit":   waitAudit,
			"wait-alert":   waitAlert,
			"tamper-audit": tamperAudit,
		},
	})
}

// setenvJSON VAR FILE FIELD: set VAR to a string field of the JSON object
// in FILE.
func setenvJSON(ts *testscript.TestScript, neg bool, args []string) {
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
}

// poll calls f until it reports done or 30 s have passed.
func poll(ts *testscript.TestScript, what string, f func(ctx context.Context) (bool, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		done, err := f(ctx)
		if done {
			return
		}
		last = err
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	ts.Fatalf("%s did not happen within 30s (last error: %v)", what, last)
}

// waitAudit DATA_DIR ACTION N: wait until the trail holds at least N
// sealed events of ACTION (sealing runs every second).
func waitAudit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: wait-audit DATA_DIR ACTION N")
	}
	want, err := strconv.Atoi(args[2])
	ts.Check(err)
	c, err := dataDirClient(ts.MkAbs(args[0]))
	ts.Check(err)
	poll(ts, fmt.Sprintf("%d sealed %s events", want, args[1]), func(ctx context.Context) (bool, error) {
		n := 0
		for _, err := range c.AllAuditEvents(ctx, client.AuditQuery{Action: args[1]}) {
			if err != nil {
				return false, err
			}
			n++
		}
		return n >= want, nil
	})
}

// waitAlert DATA_DIR RULE VAR: wait until an open alert of RULE exists and
// set VAR to its ID.
func waitAlert(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: wait-alert DATA_DIR RULE VAR")
	}
	c, err := dataDirClient(ts.MkAbs(args[0]))
	ts.Check(err)
	poll(ts, "an open "+args[1]+" alert", func(ctx context.Context) (bool, error) {
		for a, err := range c.AllAlerts(ctx, client.AlertQuery{Status: "open"}) {
			if err != nil {
				return false, err
			}
			if a.Rule == args[1] {
				ts.Setenv(args[2], a.ID)
				return true, nil
			}
		}
		return false, nil
	})
}

// tamperAudit DB ACTION: with the server stopped, change one byte of the
// outcome of the first chained event of ACTION in the bbolt file, as an
// attacker with write access to the store would; set SEQ and EVENT to
// its sequence and event ID.
func tamperAudit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: tamper-audit DB ACTION")
	}
	db, err := bbolt.Open(ts.MkAbs(args[0]), 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	ts.Check(err)
	defer db.Close()
	ts.Check(db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("audit-chain"))
		if b == nil {
			return fmt.Errorf("no audit-chain bucket")
		}
		var key, value []byte
		var id string
		cur := b.Cursor()
		for k, v := cur.First(); k != nil && key == nil; k, v = cur.Next() {
			var en struct {
				Event struct {
					ID     string `json:"id"`
					Action string `json:"action"`
				} `json:"event"`
			}
			// The stored value is the entry's JSON behind the backend's
			// ETag framing: the JSON starts at the first brace.
			i := bytes.IndexByte(v, '{')
			if i >= 0 && json.Unmarshal(v[i:], &en) == nil && en.Event.Action == args[1] {
				key, value, id = bytes.Clone(k), bytes.Clone(v), en.Event.ID
			}
		}
		if key == nil {
			return fmt.Errorf("no chained %s event", args[1])
		}
		j := bytes.Index(value, []byte(`"outcome":"`))
		if j < 0 {
			return fmt.Errorf("entry %s has no outcome", key)
		}
		value[j+len(`"outcome":"`)] ^= 0x20 // success -> Success: same length, still JSON
		seq, err := strconv.ParseUint(string(key), 10, 64)
		if err != nil {
			return err
		}
		ts.Setenv("SEQ", strconv.FormatUint(seq, 10))
		ts.Setenv("EVENT", id)
		return b.Put(key, value)
	}))
}
