package throttle

import (
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrBadRate is wrapped by the errors of ParseRate.
var ErrBadRate = errors.New("throttle: bad rate")

// Rate is Count requests per Per. The zero Rate is off: it admits
// everything.
type Rate struct {
	Count int
	Per   time.Duration
}

// Off reports whether r admits everything.
func (r Rate) Off() bool { return r.Count <= 0 || r.Per <= 0 }

// Interval is the time between requests at the sustained rate, Per/Count.
func (r Rate) Interval() time.Duration {
	if r.Off() {
		return 0
	}
	return r.Per / time.Duration(r.Count)
}

// String is the form ParseRate reads: "5/10s", "off".
func (r Rate) String() string {
	if r.Off() {
		return "off"
	}
	return strconv.Itoa(r.Count) + "/" + formatPer(r.Per)
}

// formatPer writes 10s, 1m, 1h instead of time.Duration's 1m0s.
func formatPer(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}

// ParseRate reads COUNT/DURATION ("5/10s", "10/1m", "100/1h"; a
// duration of one unit may drop its 1: "10/m"), or "off" (also "0" and
// "").
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "off", "0":
		return Rate{}, nil
	}
	count, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%w %q: want COUNT/DURATION (5/10s) or off", ErrBadRate, s)
	}
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil || n < 1 {
		return Rate{}, fmt.Errorf("%w %q: the count must be a positive integer", ErrBadRate, s)
	}
	per = strings.TrimSpace(per)
	if per != "" && (per[0] < '0' || per[0] > '9') {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("%w %q: the period must be a positive duration (10s, 1m)", ErrBadRate, s)
	}
	if d/time.Duration(n) <= 0 {
		return Rate{}, fmt.Errorf("%w %q: more than one request per nanosecond", ErrBadRate, s)
	}
	return Rate{Count: n, Per: d}, nil
}

// Set parses s into r (flag.Value).
func (r *Rate) Set(s string) error {
	v, err := ParseRate(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Type names the value in command-line help (pflag.Value).
func (r *Rate) Type() string { return "rate" }

// DefaultMaxKeys is the key cap of New when maxKeys is 0: about 30 MB of
// keys of registration-ID size at worst.
const DefaultMaxKeys = 1 << 18

// shards is the number of independently locked maps; a power of two.
const shards = 64

// Limiter applies one Rate per key. It is safe for concurrent use. A nil
// *Limiter admits everything.
type Limiter struct {
	interval int64 // Per/Count, ns
	tau      int64 // burst tolerance: Per - interval, ns
	perShard int
	seed     maphash.Seed
	shard    [shards]shard
}

type shard struct {
	mu        sync.Mutex
	tat       map[string]int64 // unix ns
	lastSweep int64
	_         [40]byte // keep shards on separate cache lines
}

// New builds a limiter of r holding at most maxKeys keys (DefaultMaxKeys
// when 0). It returns nil, which admits everything, when r is off.
func New(r Rate, maxKeys int) *Limiter {
	if r.Off() {
		return nil
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	l := &Limiter{
		interval: int64(r.Interval()),
		perShard: max(1, maxKeys/shards),
		seed:     maphash.MakeSeed(),
	}
	l.tau = int64(r.Per) - l.interval
	for i := range l.shard {
		l.shard[i].tat = make(map[string]int64)
	}
	return l
}

// Allow admits or refuses one request of key at now. A refused request
// does not count; retryAfter is the time until the key is admitted again
// (0 when ok).
func (l *Limiter) Allow(key string, now time.Time) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	t := now.UnixNano()
	s := &l.shard[maphash.String(l.seed, key)&(shards-1)]
	s.mu.Lock()
	defer s.mu.Unlock()
	tat, tracked := s.tat[key]
	if tracked && tat-l.tau > t {
		return false, time.Duration(tat - l.tau - t)
	}
	if !tracked {
		// A key past its TAT is as good as absent;
		// sweeping once per burst window (Per) bounds the map to the keys
		// used within it; a full shard sweeps at most once per interval,
		// so a flood of new keys does not scan it on every request.
		if d := t - s.lastSweep; d >= l.tau+l.interval || (len(s.tat) >= l.perShard && d >= l.interval) {
			s.sweep(t)
		}
		if len(s.tat) >= l.perShard {
			return true, 0 // full: fail open (doc.go)
		}
	}
	s.tat[key] = max(tat, t) + l.interval
	return true, 0
}

// Wait is how long key must wait from now for its next request to be
// admitted, without counting one: 0 when it would be admitted now.
func (l *Limiter) Wait(key string, now time.Time) time.Duration {
	if l == nil {
		return 0
	}
	t := now.UnixNano()
	s := &l.shard[maphash.String(l.seed, key)&(shards-1)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if tat, ok := s.tat[key]; ok && tat-l.tau > t {
		return time.Duration(tat - l.tau - t)
	}
	return 0
}

// sweep drops the keys whose TAT is past.
func (s *shard) sweep(now int64) {
	s.lastSweep = now
	for k, tat := range s.tat {
		if tat <= now {
			delete(s.tat, k)
		}
	}
}

// Len is the number of keys held.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	n := 0
	for i := range l.shard {
		s := &l.shard[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}
