package geolatency

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/pkg/enrollment"
)

func at(name, region string, lat, lon float64) *enrollment.Hub {
	return &enrollment.Hub{Name: name, Region: region, Latitude: &lat, Longitude: &lon, AllocationWeight: 1}
}

func TestAllocate(t *testing.T) {
	berlin := at("berlin.example.net", "eu-central", 52.52, 13.40)
	dublin := at("dublin.example.net", "eu-west", 53.35, -6.26)
	virginia := at("virginia.example.net", "us-east", 38.9, -77.0)
	noCoords := &enrollment.Hub{Name: "plain.example.net", Region: "ap-south", AllocationWeight: 1}
	twinA := &enrollment.Hub{Name: "twin-a.example.net", Region: "eu-west", AllocationWeight: 1}
	twinB := &enrollment.Hub{Name: "twin-b.example.net", Region: "eu-west", AllocationWeight: 1}
	all := []*enrollment.Hub{berlin, dublin, virginia, noCoords}

	p, err := New(Config{
		Networks: map[netip.Prefix]string{
			netip.MustParsePrefix("10.0.0.0/8"):  "us-east",
			netip.MustParsePrefix("10.1.0.0/16"): "eu-central",
		},
		Regions: map[string]Point{"ap-south": {19.07, 72.87}, "paris": {48.86, 2.35}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		payload string
		source  string
		hubs    []*enrollment.Hub
		want    string
		wantErr error
	}{
		{"payload location near Berlin", `{"location":{"lat":52.4,"lon":13.1}}`, "", all, berlin.Name, nil},
		{"payload location near Washington", `{"location":{"lat":40.7,"lon":-74.0}}`, "", all, virginia.Name, nil},
		{"payload location near Mumbai uses region coordinates", `{"location":{"lat":18.5,"lon":73.8}}`, "", all, noCoords.Name, nil},
		{"payload region matches a hub", `{"region":"EU-WEST"}`, "", all, dublin.Name, nil},
		{"payload region with configured coordinates", `{"region":"paris"}`, "", all, dublin.Name, nil}, // Paris–Dublin 780 km < Paris–Berlin 880 km
		{"source network longest prefix", `{}`, "10.1.2.3:5000", all, berlin.Name, nil},
		{"source network shorter prefix", ``, "10.9.2.3", all, virginia.Name, nil},
		{"payload wins over network", `{"region":"us-east"}`, "10.1.2.3:5000", all, virginia.Name, nil},
		{"invalid location ignored", `{"location":{"lat":95,"lon":0},"region":"eu-central"}`, "", all, berlin.Name, nil},
		{"no hubs", `{}`, "", nil, "", allocation.ErrNoHub},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := p.Allocate(context.Background(), allocation.Input{RegistrationID: "dev-1", Payload: []byte(tc.payload), SourceAddr: tc.source, EligibleHubs: tc.hubs})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if d.Hub != tc.want {
				t.Fatalf("hub = %q (%s), want %q", d.Hub, d.Reason, tc.want)
			}
			if err == nil && d.Reason == "" {
				t.Fatal("no reason")
			}
		})
	}

	t.Run("ties broken by hashed", func(t *testing.T) {
		tied := []*enrollment.Hub{twinA, twinB, berlin}
		seen := map[string]bool{}
		for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
			d, err := p.Allocate(context.Background(), allocation.Input{RegistrationID: id, Payload: []byte(`{"region":"eu-west"}`), EligibleHubs: tied})
			if err != nil {
				t.Fatal(err)
			}
			if want := hashed.Choose(id, []*enrollment.Hub{twinA, twinB}); d.Hub != want {
				t.Fatalf("%s: %s, want hashed choice %s", id, d.Hub, want)
			}
			seen[d.Hub] = true
		}
		if len(seen) != 2 {
			t.Fatalf("ties all went to %v", seen)
		}
	})
	t.Run("unknown location falls back to hashed", func(t *testing.T) {
		d, err := p.Allocate(context.Background(), allocation.Input{RegistrationID: "dev-9", Payload: []byte(`["not an object"]`), SourceAddr: "192.0.2.1:1", EligibleHubs: all})
		if err != nil || d.Hub != hashed.Choose("dev-9", all) {
			t.Fatalf("%+v %v", d, err)
		}
	})
}

// TestMeasuredRoundTrip: a device close to this instance (by the RTT the
// transport measured) is in the instance's region; a far one, or one
// without a measurement, is not placed by it; declared and configured
// locations come first.
func TestMeasuredRoundTrip(t *testing.T) {
	berlin := at("berlin.example.net", "eu-central", 52.52, 13.40)
	virginia := at("virginia.example.net", "us-east", 38.9, -77.0)
	hubs := []*enrollment.Hub{berlin, virginia}
	p, err := New(Config{LocalRegion: "us-east", LocalRTT: 15 * time.Millisecond,
		Networks: map[netip.Prefix]string{netip.MustParsePrefix("10.1.0.0/16"): "eu-central"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		rtt     time.Duration
		payload string
		source  string
		want    string // "" = hashed, location unknown
	}{
		{"near", 3 * time.Millisecond, "", "", virginia.Name},
		{"at the bound", 15 * time.Millisecond, "", "", virginia.Name},
		{"far", 80 * time.Millisecond, "", "", ""},
		{"not measured", 0, "", "", ""},
		{"payload region first", 3 * time.Millisecond, `{"region":"eu-central"}`, "", berlin.Name},
		{"source network first", 3 * time.Millisecond, "", "10.1.0.9:4000", berlin.Name},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := p.Allocate(context.Background(), allocation.Input{RegistrationID: "dev-1", Payload: []byte(tc.payload), SourceAddr: tc.source, SourceRTT: tc.rtt, EligibleHubs: hubs})
			if err != nil {
				t.Fatal(err)
			}
			unknown := strings.Contains(d.Reason, "location unknown")
			switch {
			case tc.want == "" && !unknown:
				t.Fatalf("placed: %s (%s)", d.Hub, d.Reason)
			case tc.want != "" && d.Hub != tc.want:
				t.Fatalf("hub %s (%s), want %s", d.Hub, d.Reason, tc.want)
			case tc.want == virginia.Name && !strings.Contains(d.Reason, "measured round trip"):
				t.Fatalf("reason %q does not say the round trip placed it", d.Reason)
			}
		})
	}
	for _, bad := range []Config{{LocalRTT: time.Millisecond}, {LocalRegion: "us-east", LocalRTT: -1}, {LocalRegion: "bad region\n"}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
	if q, err := New(Config{LocalRegion: "us-east"}); err != nil || q.localRTT != DefaultLocalRTT {
		t.Errorf("default local RTT: %v, %v", q, err)
	}
}

func TestHaversine(t *testing.T) {
	// Berlin–Paris is about 878 km.
	if d := Haversine(Point{52.52, 13.40}, Point{48.86, 2.35}); math.Abs(d-878) > 5 {
		t.Fatalf("Berlin–Paris = %.0f km", d)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"10.0.0.0/8=us-east", true},
		{"2001:db8::/32=eu", true},
		{"10.0.0.0/8", false},
		{"10.0.0.0/33=x", false},
		{"10.0.0.0/8=", false},
	}
	for _, tc := range tests {
		t.Run("network "+tc.in, func(t *testing.T) {
			if _, _, err := ParseNetwork(tc.in); (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
		})
	}
	regions := []struct {
		in string
		ok bool
	}{
		{"paris=48.86,2.35", true},
		{"paris=91,2", false},
		{"paris=48.86", false},
		{"=1,2", false},
	}
	for _, tc := range regions {
		t.Run("region "+tc.in, func(t *testing.T) {
			if _, _, err := ParseRegion(tc.in); (err == nil) != tc.ok {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
