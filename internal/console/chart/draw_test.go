package chart

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestDrawChart compares the SVG of a fixed series with its golden file:
// bars where there are counts, none where there are none, the peak on the
// axis, hour marks.
func TestDrawChart(t *testing.T) {
	counts := make([]int, 180)
	for i := range counts {
		counts[i] = (i * 7) % 11
	}
	counts[42] = 30
	got := Draw(counts, time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC))
	golden := filepath.Join("testdata", "chart.golden.svg")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("chart differs from %s (run with -update to accept)", golden)
	}
	// An empty series draws axes and labels only.
	if empty := Draw(make([]int, 180), time.Time{}); len(empty) == 0 || strings.Contains(empty, "<rect") {
		t.Error("an empty series drew bars")
	}
}
