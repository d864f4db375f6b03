package hashed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/pkg/enrollment"
)

func hubs(weights ...int) []*enrollment.Hub {
	out := make([]*enrollment.Hub, len(weights))
	for i, w := range weights {
		out[i] = &enrollment.Hub{Name: fmt.Sprintf("hub-%02d.example.net", i), AllocationWeight: w}
	}
	return out
}

func TestAllocate(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		hubs    []*enrollment.Hub
		wantErr error
	}{
		{"no hubs", nil, allocation.ErrNoHub},
		{"nil hub only", []*enrollment.Hub{nil}, allocation.ErrNoHub},
		{"one hub", hubs(1), nil},
		{"several hubs", hubs(1, 5, 10), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New().Allocate(ctx, allocation.Input{RegistrationID: "dev-1", EligibleHubs: tc.hubs})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			found := false
			for _, h := range tc.hubs {
				found = found || h.Name == d.Hub
			}
			if !found {
				t.Fatalf("hub %q is not one of the eligible hubs", d.Hub)
			}
		})
	}
}

func TestDeterministicAndCaseInsensitive(t *testing.T) {
	hs := hubs(1, 1, 1, 1, 1)
	for i := range 200 {
		id := fmt.Sprintf("Device-%d", i)
		a := Choose(id, hs)
		b := Choose(enrollment.Key(id), []*enrollment.Hub{hs[4], hs[3], hs[2], hs[1], hs[0]})
		if a != b {
			t.Fatalf("%s: %s then %s (order or case changed the decision)", id, a, b)
		}
	}
}

// TestGoldenDecisions pins decisions so that a change of the hash (which
// would move devices on re-registration) is noticed.
func TestGoldenDecisions(t *testing.T) {
	hs := hubs(1, 2, 3)
	got := []string{Choose("dev-1", hs), Choose("dev-2", hs), Choose("sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6", hs)}
	want := []string{"hub-01.example.net", "hub-01.example.net", "hub-00.example.net"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("decision %d = %s, want %s (the hash changed: existing devices would move)", i, got[i], want[i])
		}
	}
}

func TestWeightedShares(t *testing.T) {
	weights := []int{1, 2, 7, 0} // 0 counts as 1
	hs := hubs(weights...)
	const n = 40000
	count := map[string]int{}
	for i := range n {
		count[Choose(fmt.Sprintf("device-%d", i), hs)]++
	}
	total := 11.0
	for i, h := range hs {
		w := float64(max(weights[i], 1))
		want := n * w / total
		got := float64(count[h.Name])
		if math.Abs(got-want) > 0.05*n/total*w+200 {
			t.Errorf("%s (weight %d): %v devices, want about %.0f", h.Name, weights[i], got, want)
		}
	}
}

func TestStability(t *testing.T) {
	base := hubs(1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	const n = 5000
	before := make([]string, n)
	for i := range n {
		before[i] = Choose(fmt.Sprintf("device-%d", i), base)
	}
	t.Run("hub removed moves only its devices", func(t *testing.T) {
		removed := base[3].Name
		fewer := append(append([]*enrollment.Hub{}, base[:3]...), base[4:]...)
		for i := range n {
			after := Choose(fmt.Sprintf("device-%d", i), fewer)
			if before[i] != removed && after != before[i] {
				t.Fatalf("device-%d moved from %s to %s though its hub stayed", i, before[i], after)
			}
		}
	})
	t.Run("hub added takes only its share", func(t *testing.T) {
		added := &enrollment.Hub{Name: "new.example.net", AllocationWeight: 1}
		more := append(append([]*enrollment.Hub{}, base...), added)
		moved := 0
		for i := range n {
			after := Choose(fmt.Sprintf("device-%d", i), more)
			if after != before[i] {
				if after != added.Name {
					t.Fatalf("device-%d moved from %s to %s, not to the new hub", i, before[i], after)
				}
				moved++
			}
		}
		if want := n / 11; moved < want/2 || moved > want*2 {
			t.Fatalf("%d devices moved to the new hub, want about %d", moved, want)
		}
	})
}

func BenchmarkHashed50Hubs(b *testing.B) {
	hs := hubs(make([]int, 50)...)
	p := New()
	ctx := context.Background()
	in := allocation.Input{RegistrationID: "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6", EligibleHubs: hs}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Allocate(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}
