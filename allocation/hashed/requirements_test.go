package hashed

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/zdps/zdps/pkg/enrollment"
)

// The distribution requirements: 100,000 registration IDs over hubs
// weighted {1, 2, 7}.
const requirementIDs = 100_000

func weighted(weights ...int) []*enrollment.Hub {
	out := make([]*enrollment.Hub, len(weights))
	for i, w := range weights {
		out[i] = &enrollment.Hub{Name: fmt.Sprintf("w%d-%d.example.net", w, i), AllocationWeight: w}
	}
	return out
}

func regID(i int) string { return fmt.Sprintf("sn-%06d-device", i) }

// TestDistributionWithinTwoPercent: each hub's share is within ±2% (relative)
// of its weight's share.
func TestDistributionWithinTwoPercent(t *testing.T) {
	hs := weighted(1, 2, 7)
	count := map[string]int{}
	for i := range requirementIDs {
		count[Choose(regID(i), hs)]++
	}
	for _, h := range hs {
		t.Run(h.Name, func(t *testing.T) {
			want := float64(requirementIDs) * float64(h.AllocationWeight) / 10
			got := float64(count[h.Name])
			if dev := math.Abs(got-want) / want; dev > 0.02 {
				t.Fatalf("%v devices, want %.0f ±2%% (off by %.2f%%)", got, want, dev*100)
			}
			t.Logf("%v devices, want %.0f (off by %.2f%%)", got, want, math.Abs(got-want)/want*100)
		})
	}
}

// TestFourthHubMovesNothingBetweenTheFirstThree: after adding a hub, every
// device either stays or moves to the new hub.
func TestFourthHubMovesNothingBetweenTheFirstThree(t *testing.T) {
	three := weighted(1, 2, 7)
	four := append(weighted(1, 2, 7), &enrollment.Hub{Name: "fourth.example.net", AllocationWeight: 5})
	moved := 0
	for i := range requirementIDs {
		before, after := Choose(regID(i), three), Choose(regID(i), four)
		if before == after {
			continue
		}
		if after != "fourth.example.net" {
			t.Fatalf("%s moved from %s to %s: adding a hub moved a device between the first three", regID(i), before, after)
		}
		moved++
	}
	// The new hub takes its weight's share (5 of 15) and nothing more.
	want := float64(requirementIDs) * 5 / 15
	if math.Abs(float64(moved)-want)/want > 0.02 {
		t.Fatalf("%d devices moved to the new hub, want %.0f ±2%%", moved, want)
	}
}

// decisionsDigest is a digest of the decisions for every requirement ID.
func decisionsDigest() string {
	hs := weighted(1, 2, 7)
	h := sha256.New()
	for i := range requirementIDs {
		fmt.Fprintln(h, Choose(regID(i), hs))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestSameAfterRestart recomputes every decision in a new process (this
// test binary run again) and compares: nothing per-process (a random seed,
// map order) may enter a decision.
func TestSameAfterRestart(t *testing.T) {
	if os.Getenv("ZDPS_HASHED_CHILD") == "1" {
		fmt.Println("digest=" + decisionsDigest())
		return
	}
	here := decisionsDigest()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSameAfterRestart$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ZDPS_HASHED_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	_, rest, ok := strings.Cut(string(out), "digest=")
	if !ok {
		t.Fatalf("child printed no digest:\n%s", out)
	}
	there, _, _ := strings.Cut(rest, "\n")
	if there != here {
		t.Fatalf("decisions differ between processes: %s here, %s in a new process", here, there)
	}
}
