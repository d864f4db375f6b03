package detect

import "time"

// window is a bounded map whose entries expire. put refuses a new key
// when the map is full even after dropping expired entries.
type window[V any] struct {
	max int
	m   map[string]entry[V]
	// lastSweep bounds sweeping a full map to once a second (event time).
	lastSweep time.Time
}

type entry[V any] struct {
	v       V
	expires time.Time
}

func newWindow[V any](max int) window[V] {
	return window[V]{max: max, m: map[string]entry[V]{}}
}

func (w *window[V]) get(k string, now time.Time) (V, bool) {
	e, ok := w.m[k]
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (w *window[V]) put(k string, v V, now, expires time.Time) bool {
	if _, ok := w.m[k]; !ok && len(w.m) >= w.max {
		if now.Sub(w.lastSweep) >= time.Second {
			w.lastSweep = now
			for key, e := range w.m {
				if !now.Before(e.expires) {
					delete(w.m, key)
				}
			}
		}
		if len(w.m) >= w.max {
			return false
		}
	}
	w.m[k] = entry[V]{v: v, expires: expires}
	return true
}

func (w *window[V]) len() int { return len(w.m) }
