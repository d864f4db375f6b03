package static

import (
	"context"
	"errors"
	"testing"

	"github.com/zdps/zdps/allocation"
	"github.com/zdps/zdps/pkg/enrollment"
)

func TestAllocate(t *testing.T) {
	a := &enrollment.Hub{Name: "a.example.net"}
	b := &enrollment.Hub{Name: "B.example.net"}
	tests := []struct {
		name    string
		in      allocation.Input
		want    string
		wantErr error
	}{
		{"individual iotHubs", allocation.Input{Enrollment: &enrollment.IndividualEnrollment{Spec: enrollment.Spec{IoTHubs: []string{"b.example.net"}}}, EligibleHubs: []*enrollment.Hub{a, b}}, "B.example.net", nil},
		{"group iotHubs", allocation.Input{Group: &enrollment.EnrollmentGroup{Spec: enrollment.Spec{IoTHubs: []string{"a.example.net"}}}, EligibleHubs: []*enrollment.Hub{a, b}}, "a.example.net", nil},
		{"iotHubHostName", allocation.Input{Group: &enrollment.EnrollmentGroup{Spec: enrollment.Spec{IoTHubHostName: "a.example.net"}}, EligibleHubs: []*enrollment.Hub{a, b}}, "a.example.net", nil},
		{"hub not eligible", allocation.Input{Group: &enrollment.EnrollmentGroup{Spec: enrollment.Spec{IoTHubs: []string{"c.example.net"}}}, EligibleHubs: []*enrollment.Hub{a, b}}, "", allocation.ErrNoHub},
		{"no hub named", allocation.Input{Group: &enrollment.EnrollmentGroup{Spec: enrollment.Spec{IoTHubs: []string{"a.example.net", "b.example.net"}}}, EligibleHubs: []*enrollment.Hub{a, b}}, "", allocation.ErrNoHub},
		{"no enrollment", allocation.Input{EligibleHubs: []*enrollment.Hub{a}}, "", allocation.ErrNoHub},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New().Allocate(context.Background(), tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if d.Hub != tc.want {
				t.Fatalf("hub = %q, want %q", d.Hub, tc.want)
			}
		})
	}
}
