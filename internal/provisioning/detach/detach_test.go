package detach

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRunFinishedInTime(t *testing.T) {
	var g Group
	v, finished, err := Run(t.Context(), &g, time.Minute, time.Minute,
		func(context.Context) (int, error) { return 7, nil },
		func(context.Context, int, error) { t.Error("late called for a run that finished in time") })
	if !finished || v != 7 || err != nil {
		t.Fatalf("got %d, %v, %v", v, finished, err)
	}
	if err := g.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestRunDetachedHandsLateResult(t *testing.T) {
	var g Group
	release := make(chan struct{})
	late := make(chan error, 1)
	boom := errors.New("boom")
	_, finished, err := Run(t.Context(), &g, 10*time.Millisecond, time.Minute,
		func(ctx context.Context) (int, error) {
			<-release
			return 0, boom
		},
		func(ctx context.Context, _ int, err error) {
			if ctx.Err() != nil {
				t.Error("late runs on a cancelled context")
			}
			late <- err
		})
	if finished || err != nil {
		t.Fatalf("finished %v, err %v: want detached", finished, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := g.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with a run going: %v", err)
	}
	close(release)
	if err := <-late; !errors.Is(err, boom) {
		t.Fatalf("late got %v", err)
	}
	if err := g.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestRunKeepsValuesNotCancellation(t *testing.T) {
	type key struct{}
	var g Group
	ctx, cancel := context.WithCancel(context.WithValue(t.Context(), key{}, "request-1"))
	cancel() // the request is gone already
	got := make(chan string, 1)
	_, finished, _ := Run(ctx, &g, time.Minute, time.Minute,
		func(bctx context.Context) (int, error) {
			if bctx.Err() != nil {
				t.Error("the run inherited the request's cancellation")
			}
			got <- bctx.Value(key{}).(string)
			return 0, nil
		},
		func(context.Context, int, error) {})
	if v := <-got; v != "request-1" {
		t.Fatalf("value %q", v)
	}
	_ = finished // either: the request ended before or after the run
	if err := g.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
}
