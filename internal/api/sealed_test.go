package api

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zdps/zdps/internal/sealed"
	"github.com/zdps/zdps/internal/store"
)

// With secrets sealed at rest (as zdps serve runs), the wire is the same:
// the golden enrollment answer is unchanged, the keys come back from
// attestationmechanism exactly as written, and the policies seeded in the
// clear (a store from before sealing) still authenticate.
func TestGoldenWithSealedStore(t *testing.T) {
	box, err := sealed.New(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *testConfig) {
		c.Store = store.New(c.Store.Backend, func() time.Time { return testNow }, store.WithSealer(box))
	})
	key := strings.Repeat("A", 43) + "="
	body := `{
		"registrationId": "golden-device",
		"deviceId": "golden-device",
		"attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": "` + key + `", "secondaryKey": ""}},
		"capabilities": {"iotEdge": false},
		"iotHubHostName": "hub-1.example.com",
		"initialTwin": {"tags": {"site": "berlin"}, "properties": {"desired": {"interval": 30}}},
		"provisioningStatus": "enabled",
		"reprovisionPolicy": {"updateHubAssignment": true, "migrateDeviceData": false},
		"allocationPolicy": "static",
		"iotHubs": ["hub-1.example.com"]
	}`
	e.must(req{method: http.MethodPut, path: "/hubs/hub-1.example.com", body: `{"name":"hub-1.example.com"}`}, http.StatusOK)
	e.must(req{method: http.MethodPut, path: "/enrollments/golden-device", body: body}, http.StatusOK)
	r := e.must(req{method: http.MethodGet, path: "/enrollments/golden-device"}, http.StatusOK)
	golden(t, "enrollment.golden.json", normalise(t, r.body))

	r = e.must(req{method: http.MethodPost, path: "/enrollments/golden-device/attestationmechanism"}, http.StatusOK)
	if !strings.Contains(string(r.body), `"primaryKey":"`+key+`"`) {
		t.Fatalf("attestationmechanism answered %s", r.body)
	}
	it, err := sealedGetRaw(t, e.st.Backend, store.BucketEnrollments, "golden-device")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(it, []byte(key)) || !bytes.Contains(it, []byte(sealed.Prefix)) {
		t.Fatalf("stored enrollment is not sealed: %s", it)
	}
}

func sealedGetRaw(t *testing.T, b store.Backend, bk store.Bucket, key string) ([]byte, error) {
	var v []byte
	err := b.View(t.Context(), func(tx store.Tx) error {
		it, err := tx.Get(t.Context(), bk, key)
		v = it.Value
		return err
	})
	return v, err
}
