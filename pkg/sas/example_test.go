package sas_test

import (
	"encoding/base64"
	"fmt"
	"time"

	"github.com/zdps/zdps/pkg/sas"
)

// A device in a symmetric-key group derives its key from the group key and
// signs a token; the server parses the token, checks the resource and
// verifies it with the same derived key.
func Example() {
	groupKey, _ := base64.StdEncoding.DecodeString("8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==")
	deviceKey := sas.DeriveDeviceKey(groupKey, "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
	now := time.Unix(1_700_000_000, 0)

	// Device side.
	header := sas.Build(deviceKey, "0ne00000001/registrations/sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6", "registration", now.Add(time.Hour))

	// Server side.
	tok, err := sas.Parse(header)
	if err != nil {
		panic(err)
	}
	resource, _ := tok.DecodedResource()
	fmt.Println(resource)
	fmt.Println(tok.Verify(deviceKey, now, 5*time.Minute))
	// Output:
	// 0ne00000001/registrations/sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6
	// <nil>
}
