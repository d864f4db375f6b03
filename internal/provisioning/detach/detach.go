package detach

import (
	"context"
	"sync"
	"time"
)

// Group counts the runs that continue after their request.
type Group struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0
}

func (g *Group) add() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == 0 {
		g.idle = make(chan struct{})
	}
	g.n++
}

func (g *Group) done() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n--; g.n == 0 {
		close(g.idle)
	}
}

func (g *Group) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	return g.idle
}

// Wait blocks until every run of the group has ended, or ctx ends (then
// it returns ctx.Err()).
func (g *Group) Wait(ctx context.Context) error {
	select {
	case <-g.wait():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handoff passes a run's outcome to the request waiting for it, unless the
// request stopped waiting (detached) first.
type handoff[T any] struct {
	mu       sync.Mutex
	done     chan struct{}
	detached bool
	finished bool
	v        T
	err      error
}

// finish records the outcome; false when the request no longer waits and
// the run must settle it itself.
func (h *handoff[T]) finish(v T, err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.detached {
		return false
	}
	h.v, h.err, h.finished = v, err, true
	close(h.done)
	return true
}

// detach stops waiting; false when the run finished already (h.v, h.err
// hold its outcome).
func (h *handoff[T]) detach() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.finished {
		return false
	}
	h.detached = true
	return true
}

// Run runs fn in g on a context that keeps ctx's values (a request ID)
// but not its cancellation, bounded by timeout, and waits for it up to
// wait or until ctx ends. When fn finished by then, Run returns its
// result and finished true. Otherwise Run returns finished false and fn
// goes on; its result then goes to late, on fn's context.
func Run[T any](ctx context.Context, g *Group, wait, timeout time.Duration, fn func(context.Context) (T, error), late func(context.Context, T, error)) (v T, finished bool, err error) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	h := &handoff[T]{done: make(chan struct{})}
	g.add()
	go func() {
		defer g.done()
		defer cancel()
		v, err := fn(bctx)
		if h.finish(v, err) {
			return
		}
		late(bctx, v, err)
	}()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-h.done:
		return h.v, true, h.err
	case <-timer.C:
	case <-ctx.Done():
	}
	if !h.detach() {
		return h.v, true, h.err
	}
	return v, false, nil
}
