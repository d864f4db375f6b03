package main

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zdps/zdps/cmd/zdps/internal/cli"
	"github.com/zdps/zdps/pkg/enrollment"
)

// syncBuffer is a bytes.Buffer one goroutine writes while another reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runInProcess runs `zdps ARGS` in this process with an empty environment
// until it ends or ctx is cancelled, and returns its exit status.
func runInProcess(ctx context.Context, stdout, stderr io.Writer, args ...string) int {
	root := cli.NewRoot(cli.Options{
		Stdin: strings.NewReader(""), Stdout: stdout, Stderr: stderr,
		Getenv: func(string) string { return "" }, StderrIsTerminal: func() bool { return false },
	})
	root.AddCommand(newServeCmd())
	root.SetArgs(args)
	return cli.Execute(ctx, root)
}

// TestAuditTailFollow runs `zdps audit tail --follow` against a real server
// (both in this process, so the test can read the output as it comes): it
// prints each new event once, in columns aligned with its header, and ends
// cleanly (status 0) when its context is cancelled, as on Ctrl-C.
func TestAuditTailFollow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real server")
	}
	dir := filepath.Join(t.TempDir(), "zdps-data")
	ctx, cancel := context.WithCancel(t.Context())
	var serverErr syncBuffer
	served := make(chan int, 1)
	go func() {
		served <- runInProcess(ctx, io.Discard, &serverErr, "serve", "--data-dir", dir, "--listen", "127.0.0.1:"+freePort(t), "--mqtt-listen", "127.0.0.1:0", "--log-level", "warn")
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-served; code != 0 {
			t.Errorf("serve exited %d: %s", code, serverErr.String())
		}
	})
	readyCtx, readyCancel := context.WithTimeout(ctx, time.Minute)
	defer readyCancel()
	c, err := serverClient(readyCtx, dir)
	if err != nil {
		t.Fatalf("%v (server: %s)", err, serverErr.String())
	}

	var out, stderr syncBuffer
	tailCtx, stopTail := context.WithCancel(ctx)
	defer stopTail()
	tailed := make(chan int, 1)
	go func() {
		tailed <- runInProcess(tailCtx, &out, &stderr, "--data-dir", dir, "audit", "tail", "--follow", "--action", "hub.")
	}()

	hubs := []string{"hub-0.example.com", "hub-1.example.com", "hub-2.example.com"}
	for _, name := range hubs {
		if _, err := c.CreateHub(ctx, &enrollment.Hub{Name: name}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(out.String(), "hub/"+name+"\n") {
			if time.Now().After(deadline) {
				t.Fatalf("tail --follow did not print the creation of %s within 15s; output:\n%s\nstderr: %s", name, out.String(), stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	stopTail()
	if code := <-tailed; code != 0 {
		t.Fatalf("tail --follow ended with status %d on cancel: %s", code, stderr.String())
	}

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1+len(hubs) {
		t.Fatalf("want a header and %d events, got:\n%s", len(hubs), out.String())
	}
	// Each event came in its own batch, after the header: the columns
	// must still line up with it.
	col := strings.Index(lines[0], "RESOURCE/REGISTRATION")
	for i, l := range lines[1:] {
		if !strings.Contains(l, " hub.create ") || !strings.HasSuffix(l, "hub/"+hubs[i]) {
			t.Errorf("line %d = %q, want the creation of %s (in order, once)", i+1, l, hubs[i])
		}
		if col < 0 || len(l) < col || l[col:] != "hub/"+hubs[i] {
			t.Errorf("line %d = %q: the resource is not under the header's column:\n%s", i+1, l, out.String())
		}
	}
}
