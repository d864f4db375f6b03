package dps_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/zdps/zdps/pkg/dps"
)

// FuzzDecodeDeviceRegistration: the decoder never panics, refuses with
// ErrBadRequest only, and what it accepts survives a round trip through
// its own JSON form unchanged.
func FuzzDecodeDeviceRegistration(f *testing.F) {
	for _, s := range []string{
		`{"registrationId":"dev-1"}`,
		`{"registrationId":"dev-1","payload":{"a":[1,2,{"b":null}]},"csr":"MIIB"}`,
		`{"registrationId":"tpm-1","tpm":{"endorsementKey":"AToAAQAL","storageRootKey":"ARYAAQAL"}}`,
		`{"registrationId":"dev-1","payload":null}`,
		`{"registrationId":"dev-1","payload":"x"} trailing`,
		`{"registrationId":1}`,
		`{"registrationId":"dev-1","etag":"x"}`,
		``, `null`, `[]`, `{"registrationId":"dev-1","csr":"!!"}`,
		`{"registrationId":"dev-1","clientCertificateCsr":"MIIB"}`,
		`{"registrationId":"dev-1","clientCertificateCsr":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"}`,
		`{"registrationId":"dev-1","csr":"MIIB","clientCertificateCsr":"MIIB"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		dr, err := dps.DecodeDeviceRegistration(body)
		if err != nil {
			if !errors.Is(err, dps.ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			if dr != nil {
				t.Fatal("a value with an error")
			}
			return
		}
		if (dr.CSR != "" || dr.ClientCertificateCSR != "") && dr.CSRDER() == nil {
			t.Fatal("accepted a csr that does not decode")
		}
		b, err := json.Marshal(dr)
		if err != nil {
			t.Fatalf("accepted value does not encode: %v", err)
		}
		again, err := dps.DecodeDeviceRegistration(b)
		if err != nil {
			t.Fatalf("own encoding %s refused: %v", b, err)
		}
		// encoding/json compacts RawMessage on output; compare compacted.
		norm := func(d *dps.DeviceRegistration) {
			if d.Payload != nil {
				var c bytes.Buffer
				if err := json.Compact(&c, d.Payload); err != nil {
					t.Fatal(err)
				}
				d.Payload = c.Bytes()
			}
		}
		norm(dr)
		norm(again)
		if !reflect.DeepEqual(dr, again) {
			t.Fatalf("round trip changed the value: %+v → %+v", dr, again)
		}
	})
}
