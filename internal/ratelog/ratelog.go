package ratelog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Logger writes through a *slog.Logger at most Lines lines per Interval
// for each key. It is safe for concurrent use.
type Logger struct {
	log      *slog.Logger
	lines    int
	interval time.Duration
	// now is the clock of windows; the summary timer runs on real time
	// and is only a backstop for keys that fall silent.
	now func() time.Time

	mu   sync.Mutex
	keys map[string]*window
}

// window is one key's current interval.
type window struct {
	start      time.Time
	written    int
	suppressed int
	level      slog.Level // the highest level held back
	timer      *time.Timer
}

// New returns a Logger writing to log at most lines lines per interval
// for each key. lines < 1 is taken as 1, interval <= 0 as one second.
func New(log *slog.Logger, lines int, interval time.Duration) *Logger {
	if lines < 1 {
		lines = 1
	}
	if interval <= 0 {
		interval = time.Second
	}
	return &Logger{log: log, lines: lines, interval: interval, now: time.Now, keys: map[string]*window{}}
}

// Log writes msg with args at level unless key has written its lines in
// the current interval; then it counts the line for the summary.
func (l *Logger) Log(ctx context.Context, level slog.Level, key, msg string, args ...any) {
	if !l.log.Enabled(ctx, level) {
		return
	}
	now := l.now()
	l.mu.Lock()
	w := l.keys[key]
	if w != nil && now.Sub(w.start) >= l.interval {
		// The key's interval is over: summarise it and start afresh.
		l.endLocked(ctx, key, w)
		w = nil
	}
	if w == nil {
		w = &window{start: now}
		l.keys[key] = w
	}
	if w.written < l.lines {
		w.written++
		l.mu.Unlock()
		l.log.Log(ctx, level, msg, args...)
		return
	}
	if w.suppressed == 0 || level > w.level {
		w.level = level
	}
	w.suppressed++
	if w.timer == nil {
		// Nothing may come after the storm: report it at the end of the
		// interval anyway. The context is detached: the request whose
		// line started the count is long answered by then.
		bg := context.WithoutCancel(ctx)
		w.timer = time.AfterFunc(l.interval-now.Sub(w.start), func() {
			l.mu.Lock()
			if l.keys[key] == w {
				l.endLocked(bg, key, w)
			}
			l.mu.Unlock()
		})
	}
	l.mu.Unlock()
}

// endLocked closes w, writing its summary if it held lines back. l.mu is
// held; the summary is one line, written under the lock so that it stays
// in order with the window's lines.
func (l *Logger) endLocked(ctx context.Context, key string, w *window) {
	delete(l.keys, key)
	if w.timer != nil {
		w.timer.Stop()
	}
	if w.suppressed > 0 {
		l.log.Log(ctx, w.level, fmt.Sprintf("suppressed %d lines", w.suppressed),
			"key", key, "suppressed", w.suppressed, "interval", l.interval)
	}
}
