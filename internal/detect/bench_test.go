package detect_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/audit"
	"github.com/zdps/zdps/internal/detect"
)

// BenchmarkObserve is the detector's cost per registration event, over
// 100,000 distinct devices in 20 groups (the tables at their working
// size).
func BenchmarkObserve(b *testing.B) {
	d := detect.New(detect.Config{})
	evs := make([]audit.Event, 100_000)
	for i := range evs {
		evs[i] = ok(fmt.Sprintf("dev-%06d", i), fmt.Sprintf("10.%d.%d.7:4000", i%20, i%250), 0, detect.DetailGroup, fmt.Sprintf("g%d", i%20), detect.DetailClientKey, fmt.Sprintf("k%d", i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		e := &evs[i%len(evs)]
		e.Time = t0.Add(time.Duration(i) * time.Millisecond)
		d.Observe(e)
	}
}
