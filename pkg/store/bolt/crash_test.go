package bolt_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
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

	"github.com/zdps/zdps/pkg/store"
	"github.com/zdps/zdps/pkg/store/bolt"
)

// The crash test re-executes this test binary as a writer process and kills
// it with SIGKILL in the middle of its writes. It checks what a process crash
// can break: the file's structure, committed writes, and the atomicity of
// multi-key transactions. (A power failure, which also loses the page cache,
// needs a fault-injecting block device; it is not covered here.)

const (
	crashEnvDB    = "ZDPS_BOLT_CRASH_DB"
	crashEnvRound = "ZDPS_BOLT_CRASH_ROUND"
	crashPrefix   = "committed "
)

// crashValue is the deterministic value of a key, 100 bytes to a few KiB
// so that writes span pages.
func crashValue(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return bytes.Repeat(sum[:], 3+int(sum[0])%100)
}

// TestCrashChild is the writer process; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnvDB)
	if path == "" {
		t.Skip("helper process for TestCrashRecovery")
	}
	round := os.Getenv(crashEnvRound)
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
		os.Stdout.WriteString(crashPrefix + s + "\n")
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
					if _, err := tx.Put(ctx, "docs", key, crashValue(key), store.Condition{IfNoneMatch: true}); err != nil {
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

func TestCrashRecovery(t *testing.T) {
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
			keys, count := crashRound(t, path, round, killAfter)
			for _, k := range keys {
				committed[k] = true
			}
			maxCount = max(maxCount, count)
			verifyCrashFile(t, path, committed, maxCount)
		})
	}
}

// crashRound runs one writer process, kills it after it reported killAfter
// commits, and returns the keys it reported and the highest counter value.
func crashRound(t *testing.T, path string, round, killAfter int) ([]string, int) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvDB+"="+path, crashEnvRound+"="+strconv.Itoa(round))
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
		line, ok := strings.CutPrefix(sc.Text(), crashPrefix)
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

func verifyCrashFile(t *testing.T, path string, committed map[string]bool, minCount int) {
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
			if !bytes.Equal(it.Value, crashValue(it.Key)) {
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
