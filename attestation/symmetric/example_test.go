package symmetric_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/zdps/zdps/attestation/symmetric"
	"github.com/zdps/zdps/pkg/enrollment"
	"github.com/zdps/zdps/pkg/sas"
)

// groupsOnly is a Lookup with one symmetric-key group and no individual
// enrollments.
type groupsOnly []*enrollment.EnrollmentGroup

func (groupsOnly) IndividualEnrollment(context.Context, string) (*enrollment.IndividualEnrollment, error) {
	return nil, nil // not found
}

func (g groupsOnly) SymmetricKeyGroups(context.Context) ([]*enrollment.EnrollmentGroup, error) {
	return g, nil
}

// A device derives its key from the group key, signs its registration
// resource, and the verifier finds the group.
func Example() {
	const groupKey = "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw=="
	group := &enrollment.EnrollmentGroup{EnrollmentGroupID: "factory-a", Spec: enrollment.Spec{Attestation: &enrollment.AttestationMechanism{
		Type: enrollment.AttestationSymmetricKey, SymmetricKey: &enrollment.SymmetricKeyAttestation{PrimaryKey: groupKey},
	}}}
	now := time.Unix(1_700_000_000, 0)
	v, err := symmetric.New(symmetric.Config{Lookup: groupsOnly{group}, Now: func() time.Time { return now }})
	if err != nil {
		panic(err)
	}

	gk, _ := base64.StdEncoding.DecodeString(groupKey)
	deviceKey := sas.DeriveDeviceKey(gk, "sensor-42")
	auth := sas.Build(deviceKey, "0ne00000001/registrations/sensor-42", "registration", now.Add(time.Hour))

	res, err := v.Verify(context.Background(), "0ne00000001", "sensor-42", auth)
	fmt.Println(res.Group.EnrollmentGroupID, err)
	// Output: factory-a <nil>
}
