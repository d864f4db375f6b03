package placement

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/store"
)

func TestReadCache(t *testing.T) {
	now := time.Unix(1000, 0)
	bucket := store.Bucket("cache-test-" + t.Name())
	c := readCache[int]{bucket: bucket, ttl: 2 * time.Second, now: func() time.Time { return now }}
	loads := 0
	load := func(context.Context) (int, error) { loads++; return loads, nil }
	get := func() int {
		v, err := c.get(context.Background(), load)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	steps := []struct {
		name string
		do   func()
		want int
	}{
		{"first read loads", func() {}, 1},
		{"within the TTL: kept", func() { now = now.Add(time.Second) }, 1},
		{"a local write drops it", func() { store.Touch(bucket) }, 2},
		{"kept again", func() {}, 2},
		{"past the TTL: loaded", func() { now = now.Add(3 * time.Second) }, 3},
		{"a clock going back: loaded", func() { now = now.Add(-time.Minute) }, 4},
	}
	for _, st := range steps {
		st.do()
		if got := get(); got != st.want {
			t.Fatalf("%s: got %d, want %d", st.name, got, st.want)
		}
	}
	// A failed load keeps nothing.
	boom := errors.New("boom")
	store.Touch(bucket)
	if _, err := c.get(context.Background(), func(context.Context) (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	if got := get(); got != 5 {
		t.Fatalf("after a failed load: %d, want a fresh load (5)", got)
	}
	// TTL off: every read loads.
	off := readCache[int]{bucket: bucket, ttl: -1, now: time.Now}
	for range 2 {
		_, _ = off.get(context.Background(), load)
	}
	if loads != 7 {
		t.Fatalf("with the cache off, %d loads, want 7", loads)
	}
}
