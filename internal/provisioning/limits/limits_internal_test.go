package limits

import (
	"strconv"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/throttle"
)

// BenchmarkThrottleRegistration is what the register limits add to one
// registration: the per-device, group and instance checks, all on.
// admitted: 65536 devices within their limits; flood: one device refused
// every time (the ThrottledError is the allocation).
func BenchmarkThrottleRegistration(b *testing.B) {
	huge := throttle.Rate{Count: 1 << 30, Per: time.Minute}
	for _, bc := range []struct {
		name    string
		devices int
		device  throttle.Rate
	}{
		{"admitted", 1 << 16, huge},
		{"flood", 1, throttle.Rate{Count: 10, Per: time.Minute}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := New(Limits{Register: bc.device, GroupRegister: huge, InstanceRegister: huge})
			ids := make([]string, bc.devices)
			for i := range ids {
				ids[i] = "device-" + strconv.Itoa(i)
			}
			b.ReportAllocs()
			start, n := time.Now(), 0
			for b.Loop() {
				_ = s.Register(ids[n%len(ids)], "fleet", time.Now())
				n++
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(n), "ns/check")
		})
	}
}
