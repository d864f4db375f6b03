package bench_test

import (
	"testing"

	"github.com/zdps/zdps/internal/bench"
)

func TestParseStoreCounters(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     bench.StoreCounters
	}{
		{"postgres", `# HELP zdps_store_round_trips_total Statements.
# TYPE zdps_store_round_trips_total counter
zdps_store_round_trips_total 1234
zdps_store_statements_total 4321
zdps_store_transaction_retries_total 5
zdps_store_conflicts_total 2
zdps_store_transaction_duration_seconds_count{kind="update"} 9
`, bench.StoreCounters{RoundTrips: 1234, Statements: 4321, Retries: 5, Conflicts: 2, Found: true}},
		{"bbolt exports none", "go_goroutines 12\nzdps_build_info{version=\"x\"} 1\n", bench.StoreCounters{}},
		{"garbage skipped", "zdps_store_round_trips_total x\nzdps_store_conflicts_total 1e3\n", bench.StoreCounters{Conflicts: 1000, Found: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := bench.ParseStoreCounters([]byte(tc.in)); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
