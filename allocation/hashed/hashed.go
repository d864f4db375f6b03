// Package hashed is the DPS "hashed" (evenly weighted distribution)
// allocation policy, implemented as weighted rendezvous hashing
// (highest random weight): every eligible hub h scores
//
//	score(h) = -weight(h) / ln(u(h, registrationID))
//
// where u is a uniform number in (0,1) derived from SHA-256 of the hub name
// and the registration ID (both lower-cased), and the highest score wins.
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
	return allocation.Decision{Hub: hub}, nil
}

// Choose is the decision itself: the name of the winning hub, or "" when
// hubs is empty. A weight below 1 counts as 1 (absent weight), above 1000
// as 1000.
func Choose(registrationID string, hubs []*enrollment.Hub) string {
	id := enrollment.Key(registrationID)
	buf := make([]byte, 0, 256+len(id))
	best, bestScore := "", math.Inf(-1)
	for _, h := range hubs {
		if h == nil || h.Name == "" {
			continue
		}
		name := enrollment.Key(h.Name)
		buf = append(buf[:0], name...)
		buf = append(buf, 0)
		buf = append(buf, id...)
		s := Score(weight(h.AllocationWeight), unit(sha256.Sum256(buf)))
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

// unit maps the first 53 bits of a digest to (0,1), never 0 or 1.
func unit(sum [32]byte) float64 {
	x := binary.BigEndian.Uint64(sum[:8]) >> 11
	return (float64(x) + 0.5) / (1 << 53)
}
