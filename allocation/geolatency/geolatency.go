package geolatency

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Point is a position in degrees (WGS 84).
type Point struct{ Lat, Lon float64 }

// Valid reports whether the point is on the globe.
func (p Point) Valid() bool {
	return !math.IsNaN(p.Lat) && !math.IsNaN(p.Lon) && p.Lat >= -90 && p.Lat <= 90 && p.Lon >= -180 && p.Lon <= 180
}

// Config configures the policy; the zero value is valid (payload only).
type Config struct {
	// Networks maps source networks to region names.
	Networks map[netip.Prefix]string
	// Regions gives region names coordinates.
	Regions map[string]Point
	// LocalRegion is the region this zdps instance runs in; with
	// LocalRTT, a device whose measured round trip to the instance is at
	// most LocalRTT is placed there.
	LocalRegion string
	LocalRTT    time.Duration
}

// Policy is the geoLatency policy; safe for concurrent use.
type Policy struct {
	networks    []network // longest prefix first
	regions     map[string]Point
	localRegion string
	localRTT    time.Duration
}

type network struct {
	prefix netip.Prefix
	region string
}

var _ allocation.Policy = (*Policy)(nil)

// New validates cfg and builds the policy.
func New(cfg Config) (*Policy, error) {
	p := &Policy{regions: map[string]Point{}}
	for pfx, region := range cfg.Networks {
		if !pfx.IsValid() {
			return nil, fmt.Errorf("geolatency: invalid network %v", pfx)
		}
		if err := validRegion(region); err != nil {
			return nil, fmt.Errorf("geolatency: network %v: %w", pfx, err)
		}
		p.networks = append(p.networks, network{pfx.Masked(), region})
	}
	slices.SortFunc(p.networks, func(a, b network) int {
		if a.prefix.Bits() != b.prefix.Bits() {
			return b.prefix.Bits() - a.prefix.Bits()
		}
		return strings.Compare(a.prefix.String(), b.prefix.String())
	})
	for name, pt := range cfg.Regions {
		if err := validRegion(name); err != nil {
			return nil, fmt.Errorf("geolatency: %w", err)
		}
		if !pt.Valid() {
			return nil, fmt.Errorf("geolatency: region %q: coordinates %v are not on the globe", name, pt)
		}
		p.regions[enrollment.Key(name)] = pt
	}
	switch {
	case cfg.LocalRTT < 0:
		return nil, fmt.Errorf("geolatency: local round trip %v is negative", cfg.LocalRTT)
	case cfg.LocalRegion == "" && cfg.LocalRTT > 0:
		return nil, fmt.Errorf("geolatency: a local round trip needs a local region")
	case cfg.LocalRegion != "":
		if err := validRegion(cfg.LocalRegion); err != nil {
			return nil, fmt.Errorf("geolatency: local region: %w", err)
		}
		if cfg.LocalRTT == 0 {
			cfg.LocalRTT = DefaultLocalRTT
		}
	}
	p.localRegion, p.localRTT = cfg.LocalRegion, cfg.LocalRTT
	return p, nil
}

// DefaultLocalRTT is Config.LocalRTT when a LocalRegion is given without
// one: about 1,000 km of fibre and back, with the usual routing detours.
const DefaultLocalRTT = 20 * time.Millisecond

func validRegion(r string) error {
	if r == "" || len(r) > enrollment.MaxRegionLength {
		return fmt.Errorf("region name must be 1 to %d characters", enrollment.MaxRegionLength)
	}
	for _, c := range r {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("region name must not contain control characters")
		}
	}
	return nil
}

// ParseNetwork parses "CIDR=REGION" (the --geo-network flag).
func ParseNetwork(s string) (netip.Prefix, string, error) {
	c, region, ok := strings.Cut(s, "=")
	if !ok {
		return netip.Prefix{}, "", fmt.Errorf("%q: want CIDR=REGION", s)
	}
	pfx, err := netip.ParsePrefix(strings.TrimSpace(c))
	if err != nil {
		return netip.Prefix{}, "", fmt.Errorf("%q: %w", s, err)
	}
	region = strings.TrimSpace(region)
	if err := validRegion(region); err != nil {
		return netip.Prefix{}, "", fmt.Errorf("%q: %w", s, err)
	}
	return pfx.Masked(), region, nil
}

// ParseRegion parses "NAME=LAT,LON" (the --geo-region flag).
func ParseRegion(s string) (string, Point, error) {
	name, coords, ok := strings.Cut(s, "=")
	la, lo, ok2 := strings.Cut(coords, ",")
	if !ok || !ok2 {
		return "", Point{}, fmt.Errorf("%q: want NAME=LAT,LON", s)
	}
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(la), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(lo), 64)
	pt := Point{lat, lon}
	if err1 != nil || err2 != nil || !pt.Valid() {
		return "", Point{}, fmt.Errorf("%q: latitude -90..90 and longitude -180..180 in degrees", s)
	}
	name = strings.TrimSpace(name)
	if err := validRegion(name); err != nil {
		return "", Point{}, fmt.Errorf("%q: %w", s, err)
	}
	return name, pt, nil
}

// location is where the device is, as far as known.
type location struct {
	point  *Point
	region string
	source string // for reasons: how it was learnt
}

// devicePayload is the part of a registration payload the policy reads.
type devicePayload struct {
	Region   any `json:"region"`
	Location *struct {
		Lat *float64 `json:"lat"`
		Lon *float64 `json:"lon"`
	} `json:"location"`
}

func (p *Policy) locate(in allocation.Input) location {
	if t := bytes.TrimSpace(in.Payload); len(t) > 0 && t[0] == '{' {
		var pl devicePayload
		if json.Unmarshal(t, &pl) == nil {
			if l := pl.Location; l != nil && l.Lat != nil && l.Lon != nil {
				if pt := (Point{*l.Lat, *l.Lon}); pt.Valid() {
					return location{point: &pt, source: "payload location"}
				}
			}
			if r, ok := pl.Region.(string); ok && validRegion(r) == nil {
				return location{region: r, source: "payload region"}
			}
		}
	}
	if addr, ok := parseAddr(in.SourceAddr); ok {
		for _, n := range p.networks {
			if n.prefix.Contains(addr) {
				return location{region: n.region, source: "source network " + n.prefix.String()}
			}
		}
	}
	if p.localRegion != "" && in.SourceRTT > 0 && in.SourceRTT <= p.localRTT {
		return location{region: p.localRegion, source: fmt.Sprintf("measured round trip %v ≤ %v to this instance", in.SourceRTT.Round(10*time.Microsecond), p.localRTT)}
	}
	return location{}
}

func parseAddr(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// regionPoint is the coordinates of a region: configured, else the first
// hub (by name) of that region with coordinates.
func (p *Policy) regionPoint(region string, hubs []*enrollment.Hub) *Point {
	if region == "" {
		return nil
	}
	if pt, ok := p.regions[enrollment.Key(region)]; ok {
		return &pt
	}
	var best *enrollment.Hub
	for _, h := range hubs {
		if h.HasCoordinates() && strings.EqualFold(h.Region, region) && (best == nil || enrollment.Key(h.Name) < enrollment.Key(best.Name)) {
			best = h
		}
	}
	if best == nil {
		return nil
	}
	return &Point{*best.Latitude, *best.Longitude}
}

func (p *Policy) hubPoint(h *enrollment.Hub, hubs []*enrollment.Hub) *Point {
	if h.HasCoordinates() {
		return &Point{*h.Latitude, *h.Longitude}
	}
	return p.regionPoint(h.Region, hubs)
}

// distance in km from the device to a hub; +Inf when unknown.
func (p *Policy) distance(loc location, h *enrollment.Hub, hubs []*enrollment.Hub) float64 {
	if loc.region != "" && strings.EqualFold(loc.region, h.Region) {
		return 0
	}
	from := loc.point
	if from == nil {
		from = p.regionPoint(loc.region, hubs)
	}
	to := p.hubPoint(h, hubs)
	if from == nil || to == nil {
		return math.Inf(1)
	}
	return Haversine(*from, *to)
}

// Haversine is the great-circle distance in km.
func Haversine(a, b Point) float64 {
	const r = 6371.0088
	rad := math.Pi / 180
	dLat, dLon := (b.Lat-a.Lat)*rad, (b.Lon-a.Lon)*rad
	s := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(s)))
}

// Allocate chooses the nearest eligible hub; ties (equal distance, within
// a metre) go to the hashed policy among the tied hubs.
func (p *Policy) Allocate(_ context.Context, in allocation.Input) (allocation.Decision, error) {
	var hubs []*enrollment.Hub
	for _, h := range in.EligibleHubs {
		if h != nil && h.Name != "" {
			hubs = append(hubs, h)
		}
	}
	if len(hubs) == 0 {
		return allocation.Decision{}, fmt.Errorf("%w: %d hubs offered", allocation.ErrNoHub, len(in.EligibleHubs))
	}
	loc := p.locate(in)
	if loc.point == nil && loc.region == "" {
		hub := hashed.Choose(in.RegistrationID, hubs)
		return allocation.Decision{Hub: hub, Reason: fmt.Sprintf("device location unknown (no payload location or region, no configured source network, no nearby measured round trip); hashed among %d hubs", len(hubs))}, nil
	}
	best := math.Inf(1)
	var tied []*enrollment.Hub
	for _, h := range hubs {
		d := p.distance(loc, h, hubs)
		switch {
		case d < best-0.001:
			best, tied = d, []*enrollment.Hub{h}
		case math.Abs(d-best) <= 0.001 || (math.IsInf(d, 1) && math.IsInf(best, 1)):
			tied = append(tied, h)
		}
	}
	hub := hashed.Choose(in.RegistrationID, tied)
	where := "at " + loc.source
	if loc.region != "" {
		where = fmt.Sprintf("in region %q (%s)", loc.region, loc.source)
	}
	var why string
	switch {
	case math.IsInf(best, 1):
		why = fmt.Sprintf("device %s, but no hub's distance is known; hashed among %d hubs", where, len(tied))
	case len(tied) > 1:
		why = fmt.Sprintf("device %s; %d hubs tie at %.0f km, hashed among them", where, len(tied), best)
	default:
		why = fmt.Sprintf("device %s; nearest hub at %.0f km", where, best)
	}
	return allocation.Decision{Hub: hub, Reason: why}, nil
}
