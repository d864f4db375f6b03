package robustness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/bolt"
	"github.com/zdps/zdps/internal/zdpstest"
	"github.com/zdps/zdps/pkg/client"
)

// The kill -9 tests: a process is SIGKILLed in the middle of its writes and
// what it acknowledged must be there, whole, after a restart, in a file
// that checks clean. (A power failure, which also loses the page cache,
// needs a fault-injecting block device; it is not covered here.)

// TestKillUnderRegistrationLoad kills a real zdps serve (bbolt) three
// times while devices register, restarting it each time: no registration
// the server acknowledged is lost, and the store checks clean.
func TestKillUnderRegistrationLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a real server under load")
	}
	srv := zdpstest.Start(t)
	groupKey := restoreSetup(t, srv.Client())
	var acked []zdpstest.Ack
	for round := range 3 {
		load := zdpstest.StartLoad(t, srv, zdpstest.LoadConfig{Group: "fleet", GroupKey: groupKey, Prefix: fmt.Sprintf("kill%d", round)})
		load.WaitAcked(100+100*round, 2*time.Minute)
		srv.Kill()
		n, failed := load.Stop()
		acked = append(acked, load.Acked()...)
		t.Logf("round %d: killed after %d acknowledged registrations (%d failed, in flight at the kill)", round, n, failed)
		srv.Restart()
		killCheckAcked(t, srv.Client(), acked)
	}
	srv.Stop()
	info, err := bolt.Inspect(filepath.Join(srv.DataDir, "zdps.db"), time.Second)
	if err != nil {
		t.Fatalf("store after three kills: %v", err)
	}
	if info.Keys["registrations"] < len(acked) {
		t.Fatalf("%d registration records, %d acknowledged", info.Keys["registrations"], len(acked))
	}
	t.Logf("%d acknowledged registrations survived 3 kills; store checks clean (%d bytes)", len(acked), info.Size)
}

func killCheckAcked(t *testing.T, c *client.Client, acked []zdpstest.Ack) {
	t.Helper()
	for _, a := range acked {
		rec, err := c.GetRegistration(t.Context(), a.RegistrationID)
		if err != nil {
			t.Fatalf("%s, acknowledged before the kill: %v", a.RegistrationID, err)
		}
		if rec.Status != "assigned" || rec.DeviceID != a.DeviceID || rec.AssignedHub != a.AssignedHub {
			t.Fatalf("%s after the kill: %+v; the device was told %+v", a.RegistrationID, rec, a)
		}
	}
}

// TestKillDuringImport is the resumability contract of `zdps enrollment
// import` with a real process and a real kill: the server is SIGKILLed in
// the middle of a large import; the import stops with a non-zero status;
// after a restart, the same command completes it, creating exactly what
// was missing.
//
// ZDPS_E2E_IMPORT_ROWS overrides the size (default 100,000).
func TestKillDuringImport(t *testing.T) {
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
	input := filepath.Join(t.TempDir(), "devices.csv")
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

	srv := zdpstest.Start(t)
	c := srv.Client()
	imp := func() (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, zdpstest.Binary(t), "--data-dir", srv.DataDir, "enrollment", "import", input, "--retries", "2", "-o", "json")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// Kill the server once a tenth of the rows are in.
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for !killAtLeast(t.Context(), c, rows/10) {
			if t.Context().Err() != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		srv.Kill()
	}()
	out, err := imp()
	<-killed
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("first import: err = %v, want exit status 1 (server killed mid-import); output:\n%s", err, out)
	}
	if !strings.Contains(out, "import stopped early") || !strings.Contains(out, "run the same command again to resume") {
		t.Fatalf("first import does not say it stopped early:\n%s", out)
	}
	t.Logf("first import, server killed:\n%s", out)

	// Restart on the same data directory: what was committed is there.
	srv.Restart()
	c = srv.Client()
	before := killCountEnrollments(t, c)
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
	if got := killCountEnrollments(t, c); got != rows {
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

// killAtLeast reports whether the server holds at least n enrollments.
func killAtLeast(ctx context.Context, c *client.Client, n int) bool {
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

// killCountEnrollments pages through every enrollment, checking that none
// is listed twice and that each is whole.
func killCountEnrollments(t *testing.T, c *client.Client) int {
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

// The bbolt crash test re-executes this test binary as a writer process
// (TestKillBoltChild) and kills it with SIGKILL in the middle of its
// writes. It checks what a process crash can break: the file's structure,
// committed writes, and the atomicity of multi-key transactions.

const (
	killEnvDB    = "ZDPS_BOLT_CRASH_DB"
	killEnvRound = "ZDPS_BOLT_CRASH_ROUND"
	killPrefix   = "committed "
)

// killValue is the deterministic value of a key, 100 bytes to a few KiB
// so that writes span pages.
func killValue(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return bytes.Repeat(sum[:], 3+int(sum[0])%100)
}

// TestKillBoltChild is the writer process; it does nothing in a normal run.
func TestKillBoltChild(t *testing.T) {
	path := os.Getenv(killEnvDB)
	if path == "" {
		t.Skip("helper process for TestKillBoltRecovery")
	}
	round := os.Getenv(killEnvRound)
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	var mu sync.Mutex // one line per write(2) call, whole
	report := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		os.Stdout.WriteString(killPrefix + s + "\n")
	}
	// Never outlive a parent that failed to kill us.
	deadline := time.Now().Add(time.Minute)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				key := fmt.Sprintf("r%s-g%d-%06d", round, g, i)
				// Three writes that must land together: the document, its
				// index entry in another bucket, and a shared counter
				// (read-modify-write, so writers conflict).
				var n int
				err := b.Update(ctx, func(tx store.Tx) error {
					if _, err := tx.Put(ctx, "docs", key, killValue(key), store.Condition{IfNoneMatch: true}); err != nil {
						return err
					}
					if _, err := tx.Put(ctx, "index", key, nil, store.Condition{IfNoneMatch: true}); err != nil {
						return err
					}
					n = 0
					if it, err := tx.Get(ctx, "meta", "count"); err == nil {
						n, _ = strconv.Atoi(string(it.Value))
					} else if !errors.Is(err, store.ErrNotFound) {
						return err
					}
					n++
					_, err := tx.Put(ctx, "meta", "count", []byte(strconv.Itoa(n)), store.Condition{})
					return err
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				report(fmt.Sprintf("%s %d", key, n))
			}
		})
	}
	wg.Wait()
	os.Exit(3) // killed before this in a real run
}

// TestKillBoltRecovery kills a bbolt writer four times on one file: every
// reported commit survives, multi-key transactions land whole or not at
// all, and the file checks clean after each crash.
func TestKillBoltRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	committed := map[string]bool{}
	maxCount := 0
	// Several rounds on the same file: each one starts from a file the
	// previous crash left behind.
	for round, killAfter := range []int{1, 150, 600, 40} {
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
			keys, count := killBoltRound(t, path, round, killAfter)
			for _, k := range keys {
				committed[k] = true
			}
			maxCount = max(maxCount, count)
			killVerifyBoltFile(t, path, committed, maxCount)
		})
	}
}

// killBoltRound runs one writer process, kills it after it reported
// killAfter commits, and returns the keys it reported and the highest
// counter value.
func killBoltRound(t *testing.T, path string, round, killAfter int) ([]string, int) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillBoltChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killEnvDB+"="+path, killEnvRound+"="+strconv.Itoa(round))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	count := 0
	killed := false
	sc := bufio.NewScanner(out)
	// Lines keep coming after the kill until the pipe drains; every one
	// was written after its Update returned, so all count as committed.
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), killPrefix)
		if !ok {
			continue
		}
		key, n, _ := strings.Cut(line, " ")
		c, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		keys = append(keys, key)
		count = max(count, c)
		if !killed && len(keys) >= killAfter {
			killed = true
			if err := cmd.Process.Kill(); err != nil { // SIGKILL on Unix
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("writer ended on its own after %d commits: %v\n%s", len(keys), err, stderr.Bytes())
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Exited() {
		t.Fatalf("writer was not killed by a signal: %v\n%s", err, stderr.Bytes())
	}
	t.Logf("killed after %d reported commits (counter %d)", len(keys), count)
	return keys, count
}

func killVerifyBoltFile(t *testing.T, path string, committed map[string]bool, minCount int) {
	t.Helper()
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer b.Close()
	if err := b.Check(); err != nil {
		t.Fatalf("consistency check after crash: %v", err)
	}
	ctx := t.Context()
	err = b.View(ctx, func(tx store.Tx) error {
		docs, err := tx.Scan(ctx, "docs", "", "", 0)
		if err != nil {
			return err
		}
		index, err := tx.Scan(ctx, "index", "", "", 0)
		if err != nil {
			return err
		}
		present := map[string]bool{}
		for _, it := range docs {
			present[it.Key] = true
			if !bytes.Equal(it.Value, killValue(it.Key)) {
				t.Errorf("%s: value damaged", it.Key)
			}
		}
		for k := range committed {
			if !present[k] {
				t.Errorf("%s: reported committed, missing after crash", k)
			}
		}
		// Writes of one transaction land together or not at all; at most
		// the writes in flight at the kill were lost, never reported ones.
		if len(index) != len(docs) {
			t.Errorf("%d documents but %d index entries", len(docs), len(index))
		}
		for _, it := range index {
			if !present[it.Key] {
				t.Errorf("index entry %s without its document", it.Key)
			}
		}
		it, err := tx.Get(ctx, "meta", "count")
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(string(it.Value))
		if err != nil {
			return err
		}
		if n != len(docs) || n < minCount {
			t.Errorf("counter %d, want %d documents and at least the reported %d", n, len(docs), minCount)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
