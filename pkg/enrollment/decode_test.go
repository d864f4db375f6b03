package enrollment

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

var (
	key16 = base64.StdEncoding.EncodeToString(make([]byte, 16))
	key64 = base64.StdEncoding.EncodeToString(make([]byte, 64))
)

// symKey is a minimal valid attestation, spliced into test documents.
const symKey = `"attestation":{"type":"symmetricKey"}`

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestDecodeIndividualEnrollment(t *testing.T) {
	cert := jsonString(readPEM(t, "device.pem"))
	tests := []struct {
		name  string
		body  string
		field string // "-" for success
	}{
		{"minimal symmetric key", `{"registrationId":"dev1",` + symKey + `}`, "-"},
		{"keys given", `{"registrationId":"dev1","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"` + key16 + `","secondaryKey":"` + key64 + `"}}}`, "-"},
		{"tpm", `{"registrationId":"dev1","attestation":{"type":"tpm","tpm":{"endorsementKey":"AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEA"}}}`, "-"},
		{"x509 client certificate", `{"registrationId":"dev1","attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":` + cert + `}}}}}`, "-"},
		{"x509 ca reference", `{"registrationId":"dev1","attestation":{"type":"x509","x509":{"caReferences":{"primary":"my-ca"}}}}`, "-"},
		{"read-only fields accepted", `{"registrationId":"dev1","etag":"x","createdDateTimeUtc":"2020-01-01T00:00:00Z","lastUpdatedDateTimeUtc":"2020-01-01T00:00:00Z","registrationState":{"registrationId":"dev1","status":"assigned"},` + symKey + `}`, "-"},
		{"static with one hub", `{"registrationId":"dev1",` + symKey + `,"allocationPolicy":"Static","iotHubs":["hub.example.com"]}`, "-"},
		{"custom with webhook", `{"registrationId":"dev1",` + symKey + `,"allocationPolicy":"custom","customAllocationDefinition":{"webhookUrl":"http://10.0.0.1:8080/alloc"}}`, "-"},

		{"empty body", ``, ""},
		{"syntax error", `{"registrationId":"dev1",}`, ""},
		{"truncated", `{"registrationId":"dev1"`, ""},
		{"array", `[]`, ""},
		{"trailing data", `{"registrationId":"dev1",` + symKey + `} {}`, ""},
		{"unknown field", `{"registrationId":"dev1",` + symKey + `,"colour":"red"}`, "colour"},
		{"unknown nested field", `{"registrationId":"dev1","attestation":{"type":"symmetricKey","symmetricKey":{"tertiaryKey":"x"}}}`, "tertiaryKey"},
		{"unknown reprovision field", `{"registrationId":"dev1",` + symKey + `,"reprovisionPolicy":{"always":true}}`, "always"},
		{"wrong type", `{"registrationId":42,` + symKey + `}`, "registrationId"},
		{"missing registration ID", `{` + symKey + `}`, "registrationId"},
		{"bad registration ID", `{"registrationId":"dev 1",` + symKey + `}`, "registrationId"},
		{"bad device ID", `{"registrationId":"dev1","deviceId":"dev/1",` + symKey + `}`, "deviceId"},
		{"missing attestation", `{"registrationId":"dev1"}`, "attestation"},
		{"missing attestation type", `{"registrationId":"dev1","attestation":{}}`, "attestation.type"},
		{"unknown attestation type", `{"registrationId":"dev1","attestation":{"type":"password"}}`, "attestation.type"},
		{"inconsistent attestation", `{"registrationId":"dev1","attestation":{"type":"symmetricKey","tpm":{"endorsementKey":"AAAA"}}}`, "attestation.tpm"},
		{"short key", `{"registrationId":"dev1","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"` + base64.StdEncoding.EncodeToString(make([]byte, 8)) + `"}}}`, "attestation.symmetricKey.primaryKey"},
		{"bad secondary key", `{"registrationId":"dev1","attestation":{"type":"symmetricKey","symmetricKey":{"secondaryKey":"!!"}}}`, "attestation.symmetricKey.secondaryKey"},
		{"tpm without endorsement key", `{"registrationId":"dev1","attestation":{"type":"tpm","tpm":{}}}`, "attestation.tpm.endorsementKey"},
		{"tpm EK certificate neither PEM nor base64", `{"registrationId":"dev1","attestation":{"type":"tpm","tpm":{"endorsementKey":"AAAA","endorsementKeyCertificate":"not a certificate!"}}}`, "attestation.tpm.endorsementKeyCertificate"},
		{"x509 without certificates", `{"registrationId":"dev1","attestation":{"type":"x509","x509":{}}}`, "attestation.x509"},
		{"x509 both forms", `{"registrationId":"dev1","attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":` + cert + `}},"caReferences":{"primary":"ca"}}}}`, "attestation.x509"},
		{"x509 signing certificates on an individual", `{"registrationId":"dev1","attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":` + cert + `}}}}}`, "attestation.x509.signingCertificates"},
		{"x509 bad certificate", `{"registrationId":"dev1","attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":"AAAA"}}}}}`, "attestation.x509.clientCertificates.primary.certificate"},
		{"x509 info without certificate", `{"registrationId":"dev1","attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"info":{"subjectName":"CN=x","sha1Thumbprint":"","sha256Thumbprint":"","issuerName":"","notBeforeUtc":"","notAfterUtc":"","serialNumber":"","version":3}}}}}}`, "attestation.x509.clientCertificates.primary.certificate"},
		{"x509 bad secondary", `{"registrationId":"dev1","attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":` + cert + `},"secondary":{"certificate":"x"}}}}}`, "attestation.x509.clientCertificates.secondary.certificate"},
		{"bad status", `{"registrationId":"dev1",` + symKey + `,"provisioningStatus":"paused"}`, "provisioningStatus"},
		{"bad policy", `{"registrationId":"dev1",` + symKey + `,"allocationPolicy":"random"}`, "allocationPolicy"},
		{"custom without definition", `{"registrationId":"dev1",` + symKey + `,"allocationPolicy":"custom"}`, "customAllocationDefinition"},
		{"custom without webhook", `{"registrationId":"dev1",` + symKey + `,"allocationPolicy":"custom","customAllocationDefinition":{}}`, "customAllocationDefinition.webhookUrl"},
		{"custom relative webhook", `{"registrationId":"dev1",` + symKey + `,"allocationPolicy":"custom","customAllocationDefinition":{"webhookUrl":"/alloc"}}`, "customAllocationDefinition.webhookUrl"},
		{"custom ftp webhook", `{"registrationId":"dev1",` + symKey + `,"allocationPolicy":"custom","customAllocationDefinition":{"webhookUrl":"ftp://x.example.com/"}}`, "customAllocationDefinition.webhookUrl"},
		{"static without hub", `{"registrationId":"dev1",` + symKey + `,"allocationPolicy":"static"}`, "iotHubs"},
		{"static with two hubs", `{"registrationId":"dev1",` + symKey + `,"allocationPolicy":"static","iotHubs":["a.example.com","b.example.com"]}`, "iotHubs"},
		{"bad hub", `{"registrationId":"dev1",` + symKey + `,"iotHubs":["a.example.com","not a host"]}`, "iotHubs[1]"},
		{"bad hub host name", `{"registrationId":"dev1",` + symKey + `,"iotHubHostName":"https://hub"}`, "iotHubHostName"},
		{"tags not an object", `{"registrationId":"dev1",` + symKey + `,"initialTwin":{"tags":[1]}}`, "initialTwin.tags"},
		{"desired not an object", `{"registrationId":"dev1",` + symKey + `,"initialTwin":{"properties":{"desired":"x"}}}`, "initialTwin.properties.desired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := DecodeIndividualEnrollment([]byte(tc.body))
			wantInvalid(t, err, tc.field)
			if err != nil {
				if e != nil {
					t.Fatal("a value returned with an error")
				}
				return
			}
			if e.ETag != "" || e.CreatedDateTimeUTC != nil || e.LastUpdatedDateTimeUTC != nil || e.RegistrationState != nil {
				t.Fatalf("read-only fields kept: %+v", e)
			}
			if e.ProvisioningStatus != StatusEnabled {
				t.Fatalf("absent status not normalised to enabled: %q", e.ProvisioningStatus)
			}
		})
	}
}

func TestDecodeSyntaxErrorSaysWhere(t *testing.T) {
	_, err := DecodeIndividualEnrollment([]byte(`{"registrationId": "dev1", oops}`))
	wantInvalid(t, err, "")
	if !strings.Contains(err.Error(), "offset 28") {
		t.Fatalf("message does not say where: %v", err)
	}
}

func TestDecodeNormalises(t *testing.T) {
	e, err := DecodeIndividualEnrollment([]byte(`{"registrationId":"dev1","attestation":{"type":"SYMMETRICKEY"},"provisioningStatus":"DISABLED","allocationPolicy":"GEOLATENCY","iotHubs":[],"initialTwin":{"tags":null,"properties":{"desired":{ "a" : 1 }}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.Attestation.Type != AttestationSymmetricKey || e.ProvisioningStatus != StatusDisabled || e.AllocationPolicy != PolicyGeoLatency {
		t.Fatalf("not normalised: %+v", e)
	}
	if e.IoTHubs != nil || e.InitialTwin.Tags != nil || string(e.InitialTwin.Properties.Desired) != `{"a":1}` {
		t.Fatalf("not canonical: hubs %v tags %s desired %s", e.IoTHubs, e.InitialTwin.Tags, e.InitialTwin.Properties.Desired)
	}
	if e.Enabled() {
		t.Fatal("disabled enrollment reports Enabled")
	}
	if rp := e.Reprovision(); !rp.UpdateHubAssignment || !rp.MigrateDeviceData {
		t.Fatalf("absent reprovision policy: %+v, want DPS defaults", rp)
	}
}

func TestDecodeEnrollmentGroup(t *testing.T) {
	ca := jsonString(readPEM(t, "ca.pem"))
	tests := []struct {
		name, body, field string
	}{
		{"symmetric key", `{"enrollmentGroupId":"g1",` + symKey + `}`, "-"},
		{"signing certificates", `{"enrollmentGroupId":"g1","attestation":{"type":"x509","x509":{"signingCertificates":{"primary":{"certificate":` + ca + `}}}}}`, "-"},
		{"ca references", `{"enrollmentGroupId":"g1","attestation":{"type":"x509","x509":{"caReferences":{"primary":"ca","secondary":"ca2"}}}}`, "-"},
		{"registration state is not a group field", `{"enrollmentGroupId":"g1",` + symKey + `,"registrationState":{}}`, "registrationState"},
		{"device ID is not a group field", `{"enrollmentGroupId":"g1",` + symKey + `,"deviceId":"d"}`, "deviceId"},
		{"missing ID", `{` + symKey + `}`, "enrollmentGroupId"},
		{"bad ID", `{"enrollmentGroupId":"g1.",` + symKey + `}`, "enrollmentGroupId"},
		{"tpm group", `{"enrollmentGroupId":"g1","attestation":{"type":"tpm","tpm":{"endorsementKey":"AAAA"}}}`, "attestation.type"},
		{"client certificates on a group", `{"enrollmentGroupId":"g1","attestation":{"type":"x509","x509":{"clientCertificates":{"primary":{"certificate":` + ca + `}}}}}`, "attestation.x509.clientCertificates"},
		{"ca reference without primary", `{"enrollmentGroupId":"g1","attestation":{"type":"x509","x509":{"caReferences":{"secondary":"ca"}}}}`, "attestation.x509.caReferences.primary"},
		{"signing certificates without primary", `{"enrollmentGroupId":"g1","attestation":{"type":"x509","x509":{"signingCertificates":{}}}}`, "attestation.x509.signingCertificates.primary"},
		{"static without hub", `{"enrollmentGroupId":"g1",` + symKey + `,"allocationPolicy":"static"}`, "iotHubs"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := DecodeEnrollmentGroup([]byte(tc.body))
			wantInvalid(t, err, tc.field)
			if err == nil && (g.ETag != "" || g.ProvisioningStatus != StatusEnabled) {
				t.Fatalf("not normalised: %+v", g)
			}
		})
	}
}

func TestDecodeHub(t *testing.T) {
	tests := []struct {
		name, body, field string
		wantWeight        int
	}{
		{"minimal", `{"name":"hub.example.com"}`, "-", 1},
		{"weight", `{"name":"hub.example.com:8443","allocationWeight":1000,"applyAllocationPolicy":false,"region":"eu-west"}`, "-", 1000},
		{"etag cleared", `{"name":"hub.example.com","etag":"x"}`, "-", 1},
		{"no name", `{}`, "name", 0},
		{"bad name", `{"name":"hub example"}`, "name", 0},
		{"weight too large", `{"name":"hub.example.com","allocationWeight":1001}`, "allocationWeight", 0},
		{"negative weight", `{"name":"hub.example.com","allocationWeight":-1}`, "allocationWeight", 0},
		{"fractional weight", `{"name":"hub.example.com","allocationWeight":1.5}`, "allocationWeight", 0},
		{"region too long", `{"name":"hub.example.com","region":"` + strings.Repeat("r", 65) + `"}`, "region", 0},
		{"unknown field", `{"name":"hub.example.com","shards":3}`, "shards", 0},
		{"capacity, coordinates, status", `{"name":"hub.example.com","capacity":3,"latitude":52.5,"longitude":13.4,"status":"Draining"}`, "-", 1},
		{"device count ignored", `{"name":"hub.example.com","deviceCount":7}`, "-", 1},
		{"negative capacity", `{"name":"hub.example.com","capacity":-1}`, "capacity", 0},
		{"latitude alone", `{"name":"hub.example.com","latitude":1}`, "latitude", 0},
		{"latitude out of range", `{"name":"hub.example.com","latitude":91,"longitude":0}`, "latitude", 0},
		{"longitude out of range", `{"name":"hub.example.com","latitude":0,"longitude":-181}`, "longitude", 0},
		{"unknown status", `{"name":"hub.example.com","status":"broken"}`, "status", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := DecodeHub([]byte(tc.body))
			wantInvalid(t, err, tc.field)
			if err == nil && (h.AllocationWeight != tc.wantWeight || h.ETag != "" || h.DeviceCount != nil || (h.Status != "" && h.Status != HubDraining)) {
				t.Fatalf("DecodeHub = %+v", h)
			}
		})
	}
}

func TestDecodeSharedAccessPolicy(t *testing.T) {
	tests := []struct {
		name, body, field, wantRights string
	}{
		{"owner", `{"keyName":"provisioningserviceowner","rights":"ServiceConfig,EnrollmentRead,EnrollmentWrite,RegistrationStatusRead,RegistrationStatusWrite"}`, "-", strings.Join(AllRights, ", ")},
		{"with keys", `{"keyName":"reader.1","rights":"EnrollmentRead","primaryKey":"` + key16 + `","secondaryKey":"` + key64 + `"}`, "-", "EnrollmentRead"},
		{"bad name", `{"keyName":"my policy","rights":"EnrollmentRead"}`, "keyName", ""},
		{"long name", `{"keyName":"` + strings.Repeat("p", 65) + `","rights":"EnrollmentRead"}`, "keyName", ""},
		{"no rights", `{"keyName":"p","rights":""}`, "rights", ""},
		{"unknown right", `{"keyName":"p","rights":"EnrollmentRead, Root"}`, "rights", ""},
		{"bad key", `{"keyName":"p","rights":"EnrollmentRead","primaryKey":"short"}`, "primaryKey", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := DecodeSharedAccessPolicy([]byte(tc.body))
			wantInvalid(t, err, tc.field)
			if err == nil && p.Rights != tc.wantRights {
				t.Fatalf("Rights = %q, want %q", p.Rights, tc.wantRights)
			}
		})
	}
}

func TestDecodeSettings(t *testing.T) {
	tests := []struct {
		name, body, field, want string
	}{
		{"default", `{}`, "-", PolicyHashed},
		{"normalised", `{"defaultAllocationPolicy":"GeoLatency"}`, "-", PolicyGeoLatency},
		{"id scope read-only", `{"idScope":"0ne99999999","defaultAllocationPolicy":"static"}`, "-", PolicyStatic},
		{"bad policy", `{"defaultAllocationPolicy":"random"}`, "defaultAllocationPolicy", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := DecodeSettings([]byte(tc.body))
			wantInvalid(t, err, tc.field)
			if err == nil && (s.DefaultAllocationPolicy != tc.want || s.IDScope != "") {
				t.Fatalf("DecodeSettings = %+v", s)
			}
		})
	}
}

func TestDecodeBulkEnrollments(t *testing.T) {
	tests := []struct {
		name, body, field, wantMode string
	}{
		{"create", `{"mode":"create","enrollments":[{"registrationId":"a",` + symKey + `}]}`, "-", BulkCreate},
		{"mode in another case", `{"mode":"UPDATEIFMATCHETAG","enrollments":[{"registrationId":"a","etag":"e1"}]}`, "-", BulkUpdateIfMatchETag},
		{"items not validated", `{"mode":"delete","enrollments":[{"registrationId":"not valid!"}]}`, "-", BulkDelete},
		{"missing mode", `{"enrollments":[{"registrationId":"a"}]}`, "mode", ""},
		{"bad mode", `{"mode":"upsert","enrollments":[{"registrationId":"a"}]}`, "mode", ""},
		{"no items", `{"mode":"create","enrollments":[]}`, "enrollments", ""},
		{"missing items", `{"mode":"create"}`, "enrollments", ""},
		{"null item", `{"mode":"create","enrollments":[{"registrationId":"a"},null]}`, "enrollments[1]", ""},
		{"unknown item field", `{"mode":"create","enrollments":[{"registrationId":"a","x":1}]}`, "x", ""},
		{"groups key", `{"mode":"create","enrollmentGroups":[]}`, "enrollmentGroups", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op, err := DecodeBulkEnrollments([]byte(tc.body))
			wantInvalid(t, err, tc.field)
			if err == nil && op.Mode != tc.wantMode {
				t.Fatalf("Mode = %q, want %q", op.Mode, tc.wantMode)
			}
		})
	}
}

func TestDecodeBulkKeepsETag(t *testing.T) {
	op, err := DecodeBulkEnrollments([]byte(`{"mode":"updateIfMatchETag","enrollments":[{"registrationId":"a","etag":"\"e1\"","createdDateTimeUtc":"2020-01-01T00:00:00Z","registrationState":{"registrationId":"a","status":"assigned"}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	e := op.Enrollments[0]
	if e.ETag != `"e1"` || e.CreatedDateTimeUTC != nil || e.RegistrationState != nil {
		t.Fatalf("bulk item: etag %q created %v state %v", e.ETag, e.CreatedDateTimeUTC, e.RegistrationState)
	}
	gop, err := DecodeBulkEnrollmentGroups([]byte(`{"mode":"updateIfMatchETag","enrollmentGroups":[{"enrollmentGroupId":"g","etag":"e2","lastUpdatedDateTimeUtc":"2020-01-01T00:00:00Z"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if g := gop.EnrollmentGroups[0]; g.ETag != "e2" || g.LastUpdatedDateTimeUTC != nil {
		t.Fatalf("bulk group: %+v", g)
	}
	_, err = DecodeBulkEnrollmentGroups([]byte(`{"mode":"create","enrollmentGroups":[null]}`))
	wantInvalid(t, err, "enrollmentGroups[0]")
}
