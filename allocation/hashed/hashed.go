// Package hashed is the DPS "hashed" (evenly weighted distribution)
// allocation policy, implemented as weighted rendezvous hashing
// (highest random weight): every eligible hub h scores
//
//	score(h) = -weight(h) / ln(u(h, registrationID))
//
// where u is a uniform number in (0,1) derived from the hub name and the
// registration ID (both lower-cased): the first 64 bits of SHA-256 of the
// registration ID, computed once per decision, XOR the FNV-1a hash of the
// hub name (mixed), through the murmur3 64-bit finalizer. The highest score
// wins.
// The decision is deterministic (the same device and hub set always give
// the same hub, on every replica and every version), each hub receives a
// share proportional to its weight, and adding or removing a hub moves
// only the devices that hub wins or held.
package hashed

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Policy is the hashed policy. The zero value is ready to use and safe for
// concurrent use.
type Policy struct{}

// New returns the policy.
func New() *Policy { return &Policy{} }

var _ allocation.Policy = (*Policy)(nil)

// Allocate returns the hub with the highest score; ties (practically
// impossible) go to the smaller hub name. It fails with allocation.ErrNoHub
// when no hub is eligible.
func (*Policy) Allocate(ctx context.Context, in allocation.Input) (allocation.Decision, error) {
	hub := Choose(in.RegistrationID, in.EligibleHubs)
	if hub == "" {
		return allocation.Decision{}, fmt.Errorf("%w: %d hubs offered", allocation.ErrNoHub, len(in.EligibleHubs))
	}
	return allocation.Decision{Hub: hub, Reason: fmt.Sprintf("highest weighted rendezvous score of the registration ID among %d eligible hubs (hub weight %d of total %d)", countHubs(in.EligibleHubs), weightOf(hub, in.EligibleHubs), totalWeight(in.EligibleHubs))}, nil
}

func countHubs(hubs []*enrollment.Hub) int {
	n := 0
	for _, h := range hubs {
		if h != nil && h.Name != "" {
			n++
		}
	}
	return n
}

func weightOf(name string, hubs []*enrollment.Hub) int {
	for _, h := range hubs {
		if h != nil && h.Name == name {
			return weight(h.AllocationWeight)
		}
	}
	return 0
}

func totalWeight(hubs []*enrollment.Hub) int {
	t := 0
	for _, h := range hubs {
		if h != nil && h.Name != "" {
			t += weight(h.AllocationWeight)
		}
	}
	return t
}

// Choose is the decision itself: the name of the winning hub, or "" when
// hubs is empty. A weight below 1 counts as 1 (absent weight), above 1000
// as 1000.
func Choose(registrationID string, hubs []*enrollment.Hub) string {
	sum := sha256.Sum256([]byte(enrollment.Key(registrationID)))
	idHash := binary.BigEndian.Uint64(sum[:8])
	best, bestScore := "", math.Inf(-1)
	for _, h := range hubs {
		if h == nil || h.Name == "" {
			continue
		}
		name := enrollment.Key(h.Name)
		s := Score(weight(h.AllocationWeight), unit(fmix64(fmix64(fnv1a(name))^idHash)))
		if s > bestScore || (s == bestScore && name < best) {
			best, bestScore = name, s
		}
	}
	if best == "" {
		return ""
	}
	for _, h := range hubs { // answer the hub name as configured
		if h != nil && enrollment.Key(h.Name) == best {
			return h.Name
		}
	}
	return best
}

// Score is -w / ln(u) for u in (0,1).
func Score(w int, u float64) float64 { return -float64(w) / math.Log(u) }

func weight(w int) int {
	switch {
	case w < 1:
		return 1
	case w > 1000:
		return 1000
	}
	return w
}

// unit maps the top 53 bits of x to (0,1), never 0 or 1.
func unit(x uint64) float64 {
	return (float64(x>>11) + 0.5) / (1 << 53)
}

// fnv1a is FNV-1a 64 of s.
func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// fmix64 is murmur3's 64-bit finalizer: a bijection with full avalanche.
func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}
