package enrollcmd

import (
	"reflect"
	"testing"
	"time"

	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

// setAll writes a distinct value through every pointer of f, as create
// and set-firmware-policy do.
func setAll(f fields) {
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	*f.ID = "id-1"
	f.Spec.Attestation = &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey}
	f.Spec.IoTHubHostName = "pinned.example.net"
	f.Spec.IoTHubs = []string{"a.example.net", "b.example.net"}
	f.Spec.AllocationPolicy = enrollment.PolicyCustom
	f.Spec.CustomAllocationDefinition = &enrollment.CustomAllocationDefinition{WebhookURL: "https://hook.example.net", APIVersion: "v1"}
	f.Spec.ProvisioningStatus = enrollment.StatusDisabled
	f.Spec.FirmwarePolicy = &firmware.Policy{Vendor: "acme"}
	*f.Meta = enrollment.Versioned{ETag: "e1", CreatedDateTimeUTC: &t}
	if f.DeviceID != nil {
		*f.DeviceID = "dev-1"
	}
	if f.State != nil {
		*f.State = &enrollment.RegistrationState{Status: "assigned"}
	}
}

// The kinds' field maps must point at the fields of the same name: a
// wrong pointer would show or send one field as another.
func TestKindFields(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	att := &enrollment.AttestationMechanism{Type: enrollment.AttestationSymmetricKey}
	hook := &enrollment.CustomAllocationDefinition{WebhookURL: "https://hook.example.net", APIVersion: "v1"}
	fw := &firmware.Policy{Vendor: "acme"}
	meta := enrollment.Versioned{ETag: "e1", CreatedDateTimeUTC: &created}
	tests := []struct {
		name string
		got  func() any
		want any
	}{
		{"enrollment", func() any {
			e := individualKind.newDoc("x")
			setAll(individualKind.fields(e))
			return e
		}, &enrollment.IndividualEnrollment{Versioned: meta, RegistrationID: "id-1", DeviceID: "dev-1",
			RegistrationState: &enrollment.RegistrationState{Status: "assigned"}, Spec: enrollment.Spec{Attestation: att,
				IoTHubHostName: "pinned.example.net", ProvisioningStatus: enrollment.StatusDisabled, AllocationPolicy: enrollment.PolicyCustom,
				IoTHubs: []string{"a.example.net", "b.example.net"}, CustomAllocationDefinition: hook, FirmwarePolicy: fw}}},
		{"group", func() any {
			grp := groupKind.newDoc("x")
			setAll(groupKind.fields(grp))
			return grp
		}, &enrollment.EnrollmentGroup{Versioned: meta, EnrollmentGroupID: "id-1", Spec: enrollment.Spec{Attestation: att,
			IoTHubHostName: "pinned.example.net", ProvisioningStatus: enrollment.StatusDisabled, AllocationPolicy: enrollment.PolicyCustom,
			IoTHubs: []string{"a.example.net", "b.example.net"}, CustomAllocationDefinition: hook, FirmwarePolicy: fw}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.got(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if groupKind.fields(groupKind.newDoc("g")).DeviceID != nil || !individualKind.individual || groupKind.individual {
		t.Fatal("only individual enrollments have a device ID")
	}
}
