package sweep

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type countingPruner struct {
	calls atomic.Int64
	err   error
}

func (p *countingPruner) PruneExpired(context.Context, time.Time) (int, error) {
	p.calls.Add(1)
	return 3, p.err
}

func TestRunPruners(t *testing.T) {
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	ok, failing := &countingPruner{}, &countingPruner{err: errors.New("store down")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, log, time.Millisecond, nil, map[string]Pruner{"ok": ok, "failing": failing})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for ok.calls.Load() < 3 || failing.calls.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("pruners not run on every tick")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	out := logs.String()
	for _, want := range []string{"records=ok count=3", "prune failed", "records=failing"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if err := Run(context.Background(), log, 0, nil, nil); err == nil {
		t.Error("Run with interval 0: nil error")
	}
}

// syncBuffer collects the logs of the pruning goroutine.
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
